"""Private Redis and PostgreSQL servers for tests, with kill and restart for fault injection.

Each managed server runs in its own temporary directory on a spare 127.0.0.1 port, the way
pytest-redis and pytest-postgresql do it, and can be SIGKILLed and restarted on the same port and
data directory. Only the standard library, redis and psycopg are used.

Servers never outlive the test run: ``stop()`` ends the process and removes its directory, an
``atexit`` hook stops whatever is still running, and on Linux every server also gets a parent-death
signal, so even a SIGKILLed pytest (pytest-timeout's thread method calls ``os._exit``) takes them down.

``ExternalRedis`` and ``ExternalPostgres`` wrap servers given by URL (``NEWSFLOW_TEST_*_URL``): same
``url``/``start``/``stop`` surface, but ``kill``/``restart`` raise ``ServerNotManagedError``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
LOG_TAIL_LINES = 30

# Linux prctl(2) options; see _parent_death_signal and _become_subreaper.
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class ServerError(RuntimeError):
    """A test server could not be found, started or stopped; the message carries its log tail."""


class ServerNotManagedError(RuntimeError):
    """kill/restart was asked of a server given by URL, which these helpers do not control."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def find_redis_server() -> str:
    """Return the path of ``redis-server``: PATH first, then /usr/bin."""
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(found, os.X_OK):
        raise ServerError("redis-server not found on PATH or in /usr/bin; install the redis-server package")
    return found


def find_postgres_bin_dir() -> Path:
    """Return the directory holding ``initdb`` and ``postgres``: PATH first, then /usr/lib/postgresql/*/bin.

    Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/NN/bin; the newest wins.
    """
    on_path = shutil.which("initdb")
    if on_path:
        # Resolve symlinks such as /usr/local/bin/initdb so `postgres` is taken from the same install.
        return Path(on_path).resolve().parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def major(path: str) -> tuple[int, ...]:
        version = Path(path).parent.parent.name
        return tuple(int(part) for part in version.split(".") if part.isdigit())

    if not candidates:
        raise ServerError(
            "initdb not found on PATH or under /usr/lib/postgresql/*/bin; install the postgresql package"
        )
    return Path(max(candidates, key=major)).parent


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server behind ``admin_url``; return its URL. Not idempotent."""
    with psycopg.connect(libpq_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url_with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name``, disconnecting its clients first. Idempotent."""
    with psycopg.connect(libpq_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy URL (``postgresql+psycopg://``) into one libpq accepts (``postgresql://``)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def sqlalchemy_url(url: str) -> str:
    """Turn a ``postgres://`` or ``postgresql://`` URL into a SQLAlchemy psycopg URL; others pass through."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        return urlunsplit(parts._replace(scheme="postgresql+psycopg"))
    return url


def url_with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` instead of its own."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class _ManagedServer:
    """One server process in a private temp dir, on a fixed port, that can be killed and restarted."""

    name = "server"
    managed = True
    stop_signal = signal.SIGTERM
    # Sent by the kernel to the server if the pytest process dies without stopping it.
    parent_death_signal = signal.SIGKILL

    def __init__(self, *, base_dir: str | os.PathLike[str] | None, startup_timeout: float) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"newsflow-{self.name}-", dir=base_dir))
        self.log_path = self.dir / f"{self.name}.log"
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._prepared = False
        self._removed = False

    # --- subclass hooks -------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Create whatever the first start needs (data directory); runs once."""

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ping(self) -> None:
        """Raise unless the server answers a trivial request."""
        raise NotImplementedError

    def _run_as(self) -> pwd.struct_passwd | None:
        """The OS user the server runs as, or None for the current user."""
        return None

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """PID of the running server process, or None when it is not running."""
        return self._proc.pid if self.running and self._proc else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive (it may still be starting up)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers. Idempotent: a no-op when already running."""
        if self._removed:
            raise ServerError(f"{self.name} on port {self.port} was stopped for good; create a new one")
        if self.running:
            return
        if not self._prepared:
            self._prepare()
            self._prepared = True
        self._spawn()
        self._wait_ready()

    def kill(self) -> None:
        """SIGKILL the server's main process (a crash), then reap the children it leaves behind."""
        _kill_and_reap(self._require_running("kill"))

    def restart(self) -> None:
        """Start again on the same port and data directory; a running server is shut down cleanly first."""
        if self.running:
            self._shutdown()
        self.start()

    def stop(self) -> None:
        """Shut the server down and delete its directory. Idempotent; the object cannot start again."""
        if self.running:
            self._shutdown()
        self._proc = None
        _LIVE.discard(self)
        if not self._removed:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._removed = True

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last ``lines`` lines of the server log ('' if there is none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # --- internals ------------------------------------------------------------------------------
    def _spawn(self) -> None:
        user = self._run_as()
        argv = self._argv()
        with self.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.dir,
                    # Own session: a Ctrl-C in the terminal does not take the server down mid-teardown.
                    start_new_session=True,
                    user=user.pw_uid if user else None,
                    group=user.pw_gid if user else None,
                    extra_groups=[] if user else None,
                    preexec_fn=_parent_death_signal(self.parent_death_signal),  # noqa: PLW1509 - see helper
                )
            except OSError as exc:
                raise ServerError(f"could not run {argv[0]}: {exc}") from exc
        _LIVE.add(self)

    def _wait_ready(self) -> None:
        proc = self._require_running("wait for")
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._proc = None
                raise ServerError(
                    f"{self.name} exited with code {proc.returncode} while starting on port {self.port}\n"
                    f"command: {' '.join(self._argv())}\n--- {self.log_path} (tail) ---\n{self.log_tail()}"
                )
            try:
                self._ping()
            except Exception as exc:  # any failure means "not ready yet"
                last_error = exc
                time.sleep(0.05)
            else:
                return
        self.kill()
        raise ServerError(
            f"{self.name} did not answer on port {self.port} within {self.startup_timeout:.0f}s "
            f"(last error: {last_error!r})\n--- {self.log_path} (tail) ---\n{self.log_tail()}"
        )

    def _shutdown(self, timeout: float = 30.0) -> None:
        proc = self._require_running("stop")
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_and_reap(proc)

    def _require_running(self, action: str) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise ServerError(f"cannot {action} {self.name} on port {self.port}: it is not running")
        return self._proc


class RedisServer(_ManagedServer):
    """A private ``redis-server`` on 127.0.0.1.

    ``appendonly=True`` makes writes survive ``kill()`` + ``restart()``; with the default
    ``appendfsync="always"`` every acknowledged write is on disk before the reply, so nothing a client
    saw succeed is lost. ``save=""`` (the default) turns RDB snapshots off.
    """

    name = "redis"
    parent_death_signal = signal.SIGTERM

    def __init__(
        self,
        *,
        password: str | None = None,
        appendonly: bool = False,
        appendfsync: str = "always",
        save: str = "",
        binary: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self.binary = binary or find_redis_server()
        self.password = password
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.save = save
        super().__init__(base_dir=base_dir, startup_timeout=startup_timeout)

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{HOST}:{self.port}/0"

    def _argv(self) -> list[str]:
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.dir),
            "--save", self.save,
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--daemonize", "no",
            "--logfile", "",  # stdout, which _spawn sends to the log file
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        return argv

    def _ping(self) -> None:
        with redis.Redis(
            host=HOST,
            port=self.port,
            password=self.password,
            socket_timeout=1,
            socket_connect_timeout=1,
            retry=Retry(NoBackoff(), 0),  # _wait_ready does the retrying; redis-py would back off for seconds
        ) as client:
            client.ping()


class PostgresServer(_ManagedServer):
    """A private PostgreSQL cluster (``initdb`` + ``postgres``) on 127.0.0.1, trust auth, fsync off.

    PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres`` system
    user (``nobody`` if there is none): the temp dir is chowned to it and the processes switch to it.
    The postmaster is started directly rather than through ``pg_ctl``, so it stays our child process:
    ``kill()`` can SIGKILL and reap exactly it, with no daemonised orphan left to PID 1.
    """

    name = "postgres"
    superuser = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
    stop_signal = signal.SIGINT
    # SIGQUIT is the "immediate" shutdown: the postmaster takes its backends down with it.
    parent_death_signal = signal.SIGQUIT

    def __init__(
        self,
        *,
        bin_dir: str | os.PathLike[str] | None = None,
        os_user: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir else find_postgres_bin_dir()
        self._user = _unprivileged_user(os_user)
        super().__init__(base_dir=base_dir, startup_timeout=startup_timeout)
        self.data_dir = self.dir / "data"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database: ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``."""
        return f"postgresql+psycopg://{self.superuser}@{HOST}:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL. Not idempotent."""
        return create_database(self.url, name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting its clients first. Idempotent."""
        drop_database(self.url, name)

    def _run_as(self) -> pwd.struct_passwd | None:
        return self._user

    def _prepare(self) -> None:
        if self._user:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        argv = [
            str(self.bin_dir / "initdb"),
            "--pgdata", str(self.data_dir),
            "--username", self.superuser,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C",
            "--no-sync",  # throwaway cluster: skip the final fsync of every file
            "--no-instructions",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                cwd=self.dir,
                timeout=120,
                check=False,
                user=self._user.pw_uid if self._user else None,
                group=self._user.pw_gid if self._user else None,
                extra_groups=[] if self._user else None,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerError(f"initdb failed: {exc}") from exc
        if result.returncode != 0:
            who = f" as user {self._user.pw_name!r}" if self._user else ""
            raise ServerError(
                f"initdb{who} exited with code {result.returncode} in {self.dir} (every directory above it "
                f"must be searchable by that user)\n--- output ---\n{result.stdout}{result.stderr}"
            )

    def _argv(self) -> list[str]:
        settings = {
            "listen_addresses": HOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
            # A throwaway cluster trades safety against a *host* crash for speed. A SIGKILLed postmaster
            # still loses no committed row: its WAL is already in the OS page cache. (So
            # synchronous_commit stays on: off would drop just-acknowledged commits on kill().)
            "fsync": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
        }
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _ping(self) -> None:
        with psycopg.connect(libpq_url(self.url), connect_timeout=1) as conn:
            conn.execute("SELECT 1")


class ExternalRedis:
    """A Redis server given by URL: usable, but not ours to kill or restart."""

    managed = False
    pid: int | None = None  # not ours to know

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def port(self) -> int | None:
        """The port in the URL, if it names one."""
        return urlsplit(self.url).port

    def start(self) -> None:
        """No-op: the server is someone else's."""

    def stop(self) -> None:
        """No-op: the server is someone else's."""

    def kill(self) -> None:
        """Raise ServerNotManagedError."""
        raise ServerNotManagedError(f"cannot kill external Redis {self.url}")

    def restart(self) -> None:
        """Raise ServerNotManagedError."""
        raise ServerNotManagedError(f"cannot restart external Redis {self.url}")


class ExternalPostgres(ExternalRedis):
    """A PostgreSQL server given by URL: databases can be created on it, but it cannot be killed."""

    def __init__(self, url: str) -> None:
        super().__init__(sqlalchemy_url(url))

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL. Not idempotent."""
        return create_database(self.url, name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting its clients first. Idempotent."""
        drop_database(self.url, name)

    def kill(self) -> None:
        """Raise ServerNotManagedError."""
        raise ServerNotManagedError(f"cannot kill external PostgreSQL {self.url}")

    def restart(self) -> None:
        """Raise ServerNotManagedError."""
        raise ServerNotManagedError(f"cannot restart external PostgreSQL {self.url}")


# --- process plumbing -----------------------------------------------------------------------------

_LIVE: set[_ManagedServer] = set()


@atexit.register
def _stop_all() -> None:
    """Stop every server still running when the interpreter exits (a crashed or interrupted run)."""
    for server in list(_LIVE):
        try:
            server.stop()
        except Exception as exc:  # keep stopping the others
            print(f"tests.servers: could not stop {server.name}: {exc}", file=sys.stderr)


def _unprivileged_user(name: str | None) -> pwd.struct_passwd | None:
    """The account PostgreSQL should run as: ``name`` if given; under root ``postgres`` or ``nobody``."""
    if name:
        return pwd.getpwnam(name)
    if os.geteuid() != 0:
        return None
    for candidate in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(candidate)
        except KeyError:
            continue
    raise ServerError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def _parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to send ``sig`` to the child when pytest dies (Linux only).

    It runs after subprocess has switched to the unprivileged user, so the setting survives.
    """
    prctl = _libc_prctl()
    if prctl is None:
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


def _become_subreaper() -> None:
    """Make this process adopt orphaned descendants (Linux only), so it can reap them itself."""
    prctl = _libc_prctl()
    if prctl is not None:
        prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid`` from /proc, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name (which may itself contain spaces): state, ppid, ...
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def _descendants(root: int) -> list[int]:
    """PIDs of every process below ``root`` in the process tree (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    if Path("/proc").is_dir():
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (stat := _proc_stat(int(entry))):
                children.setdefault(stat[1], []).append(int(entry))
    found, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _has_exited(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie; reaps it when it is our (adopted) zombie."""
    try:
        reaped, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        stat = _proc_stat(pid)  # not our child: ask /proc
        return stat is None or stat[0] == "Z"
    return reaped != 0


def _kill_and_reap(proc: subprocess.Popen[bytes], *, grace: float = 5.0, timeout: float = 15.0) -> None:
    """SIGKILL ``proc``, then wait for the children it orphans, SIGKILLing them after ``grace`` seconds.

    PostgreSQL backends notice their postmaster's death and exit on their own; the grace period lets
    them, and the SIGKILL covers any that do not. This process becomes a child subreaper first, so
    the orphans are re-parented to it and reaped here rather than left as zombies under a PID 1 that
    may never reap them.
    """
    _become_subreaper()
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGSTOP)  # frozen, it cannot fork new children while we list them
    orphans = _descendants(proc.pid)
    proc.kill()
    proc.wait()
    start = time.monotonic()
    killed = False
    while orphans := [pid for pid in orphans if not _has_exited(pid)]:
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise ServerError(f"processes {orphans} survived their parent {proc.pid} for {timeout:.0f}s")
        if elapsed > grace and not killed:
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed = True
        time.sleep(0.05)
