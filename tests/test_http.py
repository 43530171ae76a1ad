"""`newsflow serve` against real Redis and PostgreSQL: one server process for the module (issue 32).

Intake (persisted before the answer, enqueued, idempotent, bad records beside good ones), auth (401,
403), limits (413, 429, 408 for a slow body, 400 for malformed JSON), one article, the changes feed
followed while articles are stored concurrently (each seen exactly once), `newsflow export`, the
Python client, and no token in the server's log.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from newsflow import Client, Error
from schemas import Entity, Mention, RawArticle, StoredArticle, TaggedArticle
from tests.servers import free_port
from workers.core import keys
from workers.core.ids import article_id
from workers.db import repo
from workers.db.engine import transaction, upgrade

BOTH = "alice-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"
WRITER = "writer-token-0123456789abcdef"
TOKENS = f"alice submit,read {BOTH}; reader read {READER}; writer submit {WRITER}"
BODY_LIMIT = 256 * 1024
HIGH_WATER = 1000
QUEUE = keys.queue_name("clean")


class Server:
    def __init__(self, url: str, database_url: str, redis_url: str, log: Path) -> None:
        self.url = url
        self.database_url = database_url
        self.redis_url = redis_url
        self.log = log


@pytest.fixture(scope="module")
def server(postgres_server, redis_server, tmp_path_factory):
    """A migrated database of its own, the session's Redis, and `newsflow serve` on a spare port."""
    postgres_server.start()
    redis_server.start()
    name = f"test_http_{uuid.uuid4().hex}"
    database_url = postgres_server.create_database(name)
    upgrade(database_url)
    with redis.Redis.from_url(redis_server.url) as client:
        client.delete(QUEUE)
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "NEWSFLOW_DATABASE_URL": database_url,
        "NEWSFLOW_BROKER_URL": redis_server.url,
        "NEWSFLOW_SERVE_TOKENS": TOKENS,
        "NEWSFLOW_SERVE_BODY_LIMIT": str(BODY_LIMIT),
        "NEWSFLOW_SERVE_BODY_TIMEOUT": "2",
        "NEWSFLOW_SERVE_RETRY_AFTER": "1",
        "NEWSFLOW_HIGH_WATER_MARK": str(HIGH_WATER),
        "NEWSFLOW_LOG_FORMAT": "json",
        "NEWSFLOW_LOG_LEVEL": "INFO",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/livez", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"newsflow serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield Server(url, database_url, redis_server.url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sa.create_engine(database_url).dispose()
        from workers.db.engine import dispose_all

        dispose_all()
        postgres_server.drop_database(name)


def _raw(n: int, tag: str = "") -> dict:
    return {
        "source": "http.example",
        "url": f"https://http.example/{tag}{n}",
        "body": f"Article {tag}{n}. " + "Some words of news. " * 3,
        "content_type": "text/plain",
    }


def _id(record: dict) -> str:
    return article_id(RawArticle.model_validate(record))


def _jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def _auth(token: str = BOTH) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _raw_count(server: Server, ids: list[str]) -> int:
    engine = sa.create_engine(server.database_url)
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT count(*) FROM raw_articles WHERE id = ANY(:ids)"), {"ids": ids}
        ).scalar_one()
    engine.dispose()
    return int(found)


def _queued(server: Server) -> int:
    with redis.Redis.from_url(server.redis_url) as client:
        return int(client.llen(QUEUE))


def test_submit_persists_enqueues_and_a_resend_changes_nothing(server):
    """Valid records are persisted before the 202 (ids are the deterministic ids) and enqueued; sending
    the same batch again answers the same ids, stores nothing new and enqueues nothing."""
    records = [_raw(i, "a") for i in range(5)]
    before = _queued(server)
    answer = httpx.post(f"{server.url}/v1/articles", content=_jsonl(records), headers=_auth(), timeout=30)
    assert answer.status_code == 202, answer.text
    data = answer.json()
    ids = [_id(r) for r in records]
    assert [r["id"] for r in data["records"]] == ids
    assert (data["accepted"], data["new"], data["rejected"]) == (5, 5, 0)
    assert _raw_count(server, ids) == 5
    sent = _queued(server) - before
    assert sent >= 1  # micro-batches: one message carries up to NEWSFLOW_BATCH_SIZE articles
    again = httpx.post(f"{server.url}/v1/articles", json=records, headers=_auth(), timeout=30)
    assert again.status_code == 202
    assert [r["id"] for r in again.json()["records"]] == ids
    assert again.json()["new"] == 0
    assert _queued(server) - before == sent
    assert _raw_count(server, ids) == 5


def test_bad_records_beside_good_ones_are_refused_with_position_field_and_reason(server):
    """JSON lines with a malformed line and a record missing its body: those two get position, field and
    reason (as `newsflow enqueue` words them), the good ones are stored."""
    good = [_raw(i, "b") for i in range(3)]
    body = (
        json.dumps(good[0]) + "\n{not json\n" + json.dumps({"source": "x"}) + "\n"
        + json.dumps(good[1]) + "\n\n" + json.dumps(good[2]) + "\n"
    ).encode()  # fmt: skip
    answer = httpx.post(f"{server.url}/v1/articles", content=body, headers=_auth(), timeout=30)
    assert answer.status_code == 202
    data = answer.json()
    assert (data["accepted"], data["rejected"]) == (3, 2)
    bad = [r for r in data["records"] if "errors" in r]
    assert [r["position"] for r in bad] == ["request:2", "request:3"]
    assert bad[0]["errors"][0]["field"] == "(record)"
    assert "Invalid JSON" in bad[0]["errors"][0]["reason"]
    assert bad[1]["errors"] == [{"field": "body", "reason": "Field required"}]
    assert _raw_count(server, [_id(g) for g in good]) == 3
    # A JSON array: each element validated alone, positions by index.
    answer = httpx.post(
        f"{server.url}/v1/articles", json=[_raw(9, "b"), {"source": "x", "body": 5}], headers=_auth()
    )
    assert answer.status_code == 202
    assert answer.json()["records"][1]["position"] == "request[1]"
    assert answer.json()["records"][1]["errors"][0]["field"] == "body"


def test_malformed_json_array_is_400_and_the_service_answers(server):
    """A JSON array cut short is refused as a whole with where it broke, JSON nested 100,000 deep and a
    cursor or limit out of range are 400; no traceback in the answer."""
    answer = httpx.post(
        f"{server.url}/v1/articles", content=b'[{"source": "a", "body": "x"}, {"sou', headers=_auth()
    )
    assert answer.status_code == 400
    assert "malformed JSON array" in answer.json()["error"]
    assert "Traceback" not in answer.text
    deep = httpx.post(f"{server.url}/v1/articles", content=b"[" * 100_000, headers=_auth())
    assert deep.status_code == 400
    assert deep.json() == {"error": "JSON nested too deeply"}
    for query in ("after=x", f"after={2**63}-1", "limit=0", "limit=1001"):
        assert httpx.get(f"{server.url}/v1/changes?{query}", headers=_auth()).status_code == 400, query
    assert httpx.get(f"{server.url}/livez").status_code == 200


def test_half_invalid_thousand_records_store_the_valid_half(server):
    """1,000 records of which every other one is invalid: 500 stored, 500 refused by index."""
    records = [_raw(i, "c") if i % 2 == 0 else {"source": "c", "body": ""} for i in range(1000)]
    answer = httpx.post(f"{server.url}/v1/articles", content=_jsonl(records), headers=_auth(), timeout=60)
    assert answer.status_code == 202
    data = answer.json()
    assert (data["accepted"], data["rejected"]) == (500, 500)
    assert {r["index"] for r in data["records"] if "errors" in r} == set(range(1, 1000, 2))
    assert _raw_count(server, [_id(r) for r in records[::2]]) == 500


def test_tokens_401_and_403(server):
    """No token or an unknown one: 401 with WWW-Authenticate; a token without the scope: 403."""
    post = f"{server.url}/v1/articles"
    none = httpx.post(post, content=_jsonl([_raw(1, "d")]))
    assert none.status_code == 401
    assert none.headers["www-authenticate"].startswith("Bearer")
    assert httpx.post(post, content=b"", headers=_auth("wrong-token-0123456789abcdef")).status_code == 401
    assert httpx.post(post, content=_jsonl([_raw(1, "d")]), headers=_auth(READER)).status_code == 403
    assert httpx.get(f"{server.url}/v1/changes", headers=_auth(WRITER)).status_code == 403
    assert httpx.get(f"{server.url}/v1/changes", headers=_auth(READER)).status_code == 200
    with Client(server.url, READER) as nf, pytest.raises(Error) as refused:
        nf.submit([_raw(1, "d")])
    assert (refused.value.status, refused.value.message) == (403, "this token may not submit")
    assert _raw_count(server, [_id(_raw(1, "d"))]) == 0


def test_body_over_the_limit_is_413_declared_or_streamed(server):
    """A Content-Length above the limit is refused before reading; a chunked body without a length is
    cut as soon as it passes the limit (never read whole)."""
    post = f"{server.url}/v1/articles"
    big = b"x" * (BODY_LIMIT + 1)
    assert httpx.post(post, content=big, headers=_auth()).status_code == 413

    def chunks():
        for _ in range(100):  # 6.4 MiB offered, 25 times the limit
            yield b"y" * 65536

    answer = httpx.post(post, content=chunks(), headers=_auth(), timeout=30)
    assert answer.status_code == 413
    assert httpx.get(f"{server.url}/livez").status_code == 200


def send_slowly(url: str, token: str, *, every: float, at_most: float, meanwhile=None) -> tuple[bytes, float]:
    """POST a body to /v1/articles one byte every `every` seconds (announcing more than it sends) until the
    server answers or `at_most` seconds pass; the answer's head and the seconds it took. `meanwhile` is
    called after each byte the server did not answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/articles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
        )
        started = time.monotonic()
        answer = b""
        sock.settimeout(every)
        while time.monotonic() - started < at_most:
            try:
                sock.sendall(b" ")
                answer += sock.recv(4096)
            except TimeoutError:
                if meanwhile is not None:
                    meanwhile()
                continue
            except OSError:
                break
            if b"\r\n" in answer or not answer:
                break
    return answer, time.monotonic() - started


def test_slow_body_is_cut_by_the_deadline(server):
    """A body sent one byte every 0.3 s is answered 408 after the 2 s deadline, and the service answers
    other requests meanwhile; a sender that closes halfway through its body leaves nothing behind."""

    def live() -> None:
        assert httpx.get(f"{server.url}/livez", timeout=2).status_code == 200

    answer, took = send_slowly(server.url, BOTH, every=0.3, at_most=8, meanwhile=live)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert took < 5
    # A sender that goes away halfway: nothing stored, no error logged (the log test checks), still live.
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/articles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BOTH}\r\n"
            f"Content-Length: 1000\r\n\r\n{json.dumps(_raw(1, 'gone'))[:50]}".encode()
        )
        time.sleep(0.2)
    time.sleep(0.3)
    live()
    assert _raw_count(server, [_id(_raw(1, "gone"))]) == 0


def test_queue_above_the_high_water_mark_is_429_with_retry_after(server):
    """With the clean queue above the mark, a submission is refused 429 with Retry-After and nothing is
    stored; the client waits it out (Retry-After) and its batch goes in once the queue drained."""
    filler = [b"filler"] * (HIGH_WATER + 1)
    with redis.Redis.from_url(server.redis_url) as client:
        client.rpush(QUEUE, *filler)
        try:
            records = [_raw(i, "e") for i in range(3)]
            answer = httpx.post(f"{server.url}/v1/articles", content=_jsonl(records), headers=_auth())
            assert answer.status_code == 429
            assert answer.headers["retry-after"] == "1"
            assert _raw_count(server, [_id(r) for r in records]) == 0
            waits = []

            def drain(seconds: float) -> None:
                waits.append(seconds)
                client.lrem(QUEUE, 0, b"filler")

            with Client(server.url, BOTH, sleep=drain) as nf:
                result = nf.submit(records)
            assert waits == [1.0]
            assert result.retries == 1
            assert [result.ids[i] for i in range(3)] == [_id(r) for r in records]
            assert _raw_count(server, [_id(r) for r in records]) == 3
        finally:
            client.lrem(QUEUE, 0, b"filler")


def _stored(n: int, tag: str) -> tuple[RawArticle, StoredArticle, TaggedArticle]:
    raw = RawArticle.model_validate(_raw(n, tag))
    aid = article_id(raw)
    entity = Entity(
        name="Ada Lovelace", label="PERSON", count=1, first_position=0, salience=1.0,
        mentions=(Mention(start=0, end=12, text="Ada Lovelace"),),
    )  # fmt: skip
    tagged = TaggedArticle(article_id=aid, version="t", model="m", model_version="1", entities=(entity,))
    article = StoredArticle(
        id=aid, url=raw.url, source=raw.source, title=f"Title {n}", published_at=None, language="en",
        text=raw.body, dateline=None, credits=(), authors=(), duplicate_of=None, dedup="unique",
        cluster_id=aid, entities=(), versions={"store": "t"},
    )  # fmt: skip
    return raw, article, tagged


def _store(database_url: str, items: list, hold: float = 0.0) -> None:
    with transaction(database_url) as session:
        repo.ensure_raw_batch(session, [(a.id, raw, "t") for raw, a, _ in items])
        repo.upsert_articles(session, [repo.ArticleWrite(a, t, None, None, "no_match") for _, a, t in items])
        time.sleep(hold)  # a slow writer: numbered first, committed last


def test_get_article_as_show_json_with_cluster_and_entities(server):
    """GET /v1/articles/{id}: the stored article with its cluster and entities; 404 for an unknown id."""
    items = [_stored(0, "f")]
    _store(server.database_url, items)
    aid = items[0][1].id
    with Client(server.url, READER) as nf:
        found = nf.get(aid)
        assert found is not None
        assert found["cluster_id"] == aid
        assert found["entities"][0]["name"] == "Ada Lovelace"
        assert nf.get("0" * 32) is None
    assert httpx.get(f"{server.url}/v1/articles/../etc", headers=_auth()).status_code == 404


def test_changes_feed_followed_while_articles_are_stored_sees_each_once(server):
    """Writers store 60 articles in overlapping transactions, some numbered early and committed late;
    a consumer following /v1/changes from the current end sees each exactly once, in no page twice;
    `newsflow export --after` the same cursor writes the same feed."""
    with Client(server.url, READER) as nf:
        start = ""
        for change in nf.changes(limit=1000):
            start = change["cursor"]
    batches = [[_stored(i * 3 + k, "g") for k in range(3)] for i in range(20)]
    expected = {a.id for batch in batches for _, a, _ in batch}
    seen: list[str] = []
    done = threading.Event()

    def consume() -> None:
        cursor = start
        with Client(server.url, READER) as nf:
            # After the writers are done, go on until all are seen: a transaction of another database of
            # the cluster may hold the feed's horizon back for a moment (a delay, never a loss).
            deadline = None
            while deadline is None or (len(seen) < len(expected) and time.monotonic() < deadline):
                if deadline is None and done.is_set():
                    deadline = time.monotonic() + 20
                for change in nf.changes(cursor, limit=7):
                    seen.append(change["id"])
                    cursor = change["cursor"]
                time.sleep(0.05)
            seen.extend(change["id"] for change in nf.changes(cursor, limit=7))  # nothing more, none twice

    consumer = threading.Thread(target=consume)
    consumer.start()
    writers = [
        threading.Thread(target=_store, args=(server.database_url, batch, 0.4 if i % 4 == 0 else 0.0))
        for i, batch in enumerate(batches)
    ]
    for i, w in enumerate(writers):
        w.start()
        time.sleep(0.02 if i % 2 else 0.0)
    for w in writers:
        w.join()
    done.set()
    consumer.join(30)
    assert sorted(seen) == sorted(expected)  # each exactly once
    from typer.testing import CliRunner

    from workers.cli import app

    result = CliRunner().invoke(app, ["export", "--after", start, "--db", server.database_url])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["id"] for line in lines] == seen


def test_metrics_openapi_and_no_token_in_the_log(server):
    """/metrics has the request and article series; /openapi.json lists the routes; the server's log
    names tokens by name and never holds a token."""
    body = _jsonl([_raw(1, "m"), {"source": "m"}])
    assert httpx.post(f"{server.url}/v1/articles", content=body, headers=_auth()).status_code == 202
    text = httpx.get(f"{server.url}/metrics").text
    assert 'newsflow_http_requests_total{code="202",route="/v1/articles"}' in text
    assert 'newsflow_http_articles_total{outcome="rejected"}' in text
    published = httpx.get(f"{server.url}/openapi.json")
    assert published.headers["x-content-type-options"] == "nosniff"
    schema = published.json()
    assert {"/v1/articles", "/v1/articles/{id}", "/v1/changes"} <= set(schema["paths"])
    assert "RawArticle" in schema["components"]["schemas"]
    log = server.log.read_text()
    assert '"token": "alice"' in log
    for secret in (BOTH, READER, WRITER):
        assert secret not in log
    assert "Traceback" not in log
    assert "http_unexpected_error" not in log


def test_through_nginx_with_tls(server, tmp_path):
    """deploy/nginx-newsflow.conf in front of the service, with TLS: a submission passes with its token,
    /metrics is refused outside the Prometheus network, other paths are 404, and nginx's access log
    holds no token."""
    from tests.test_deploy import _tool, start_nginx

    nginx, openssl = _tool("nginx"), _tool("openssl")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k.pem"),
         "-out", str(tmp_path / "c.pem"), "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    tls, plain = free_port(), free_port()
    site = (Path(__file__).resolve().parents[1] / "deploy" / "nginx-newsflow.conf").read_text()
    for old, new in (
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{tls} ssl http2;"),
        ("listen 80;", f"listen 127.0.0.1:{plain};"),
        ("/etc/nginx/tls/news.example.org.crt", str(tmp_path / "c.pem")),
        ("/etc/nginx/tls/news.example.org.key", str(tmp_path / "k.pem")),
        ("/var/log/nginx/newsflow-access.log", str(tmp_path / "access.log")),
        ("server 127.0.0.1:8000;", f"server {server.url.removeprefix('http://')};"),
    ):
        assert old in site, old
        site = site.replace(old, new)
    proxy = start_nginx(nginx, tmp_path, site)
    base = f"https://127.0.0.1:{tls}"
    try:
        with httpx.Client(verify=False, timeout=10) as client:  # a self-signed certificate
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.get(f"{base}/openapi.json")
                    break
                except httpx.TransportError:
                    assert proxy.poll() is None, (tmp_path / "error.log").read_text()
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            records = [_raw(1, "n")]
            answer = client.post(f"{base}/v1/articles", content=_jsonl(records), headers=_auth())
            assert answer.status_code == 202, answer.text
            assert answer.json()["records"][0]["id"] == _id(records[0])
            assert client.post(f"{base}/v1/articles", content=b"", headers=_auth("x" * 20)).status_code == 401
            assert client.get(f"{base}/metrics").status_code == 403
            assert client.get(f"{base}/").status_code == 404
            assert client.get(f"http://127.0.0.1:{plain}/v1/changes").status_code == 301
    finally:
        proxy.terminate()
        proxy.wait(10)
    assert BOTH not in (tmp_path / "access.log").read_text()


def test_an_article_stored_again_comes_again_only_when_it_changed(server):
    """Storing an article again unchanged (a re-run) keeps its place in the feed; storing it with a new
    title gives it a new place after the cursor, once."""
    raw, article, tagged = _stored(0, "r")
    _store(server.database_url, [(raw, article, tagged)])

    def after(cursor: str, nf: Client) -> list[dict]:
        """The feed after `cursor` once it holds the article (the horizon may lag behind a transaction
        of another database of the cluster for a moment)."""
        deadline = time.monotonic() + 20
        while True:
            found = list(nf.changes(cursor, limit=1000))
            if article.id in {c["id"] for c in found}:
                return found
            assert time.monotonic() < deadline, "the article never appeared in the feed"
            time.sleep(0.05)

    with Client(server.url, READER) as nf:
        cursor = next(c["cursor"] for c in after("", nf) if c["id"] == article.id)
        _store(server.database_url, [(raw, article, tagged)])
        time.sleep(0.5)
        assert list(nf.changes(cursor)) == []
        retitled = article.model_copy(update={"title": "A new title"})
        _store(server.database_url, [(raw, retitled, tagged)])
        again = after(cursor, nf)
    assert [(c["id"], c["title"]) for c in again] == [(article.id, "A new title")]
