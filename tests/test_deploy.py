"""The deploy scripts keep Redis and Flower behind authentication."""

import base64
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import redis

from tests.samples import ROOT

DEPLOY = ROOT / "deploy"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "FLOWER_"))}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env['PATH']}"
    return {**env, **extra}


@pytest.mark.parametrize("script", ["redis.sh", "flower.sh"])
def test_scripts_refuse_to_start_without_credentials(script, redis_url):
    """Redis without REDIS_PASSWORD and Flower without FLOWER_BASIC_AUTH refuse to start."""
    result = subprocess.run(
        ["bash", str(DEPLOY / script)], env=_env(NEWSFLOW_BROKER_URL=redis_url), capture_output=True,
        text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr or "FLOWER_BASIC_AUTH" in result.stderr


def test_flower_rejects_a_password_less_basic_auth(redis_url):
    """FLOWER_BASIC_AUTH with an empty password is refused."""
    result = subprocess.run(
        ["bash", str(DEPLOY / "flower.sh")], env=_env(NEWSFLOW_BROKER_URL=redis_url, FLOWER_BASIC_AUTH="admin:"),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "non-empty password" in result.stderr


def test_redis_from_deploy_requires_the_password(tmp_path):
    """deploy/redis.sh starts a Redis that answers only clients with the password."""
    port = _free_port()
    process = subprocess.Popen(
        ["bash", str(DEPLOY / "redis.sh"), "--port", str(port), "--dir", str(tmp_path), "--appendonly", "no"],
        env=_env(REDIS_PASSWORD="s3cret-for-test"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        authed = redis.Redis(port=port, password="s3cret-for-test")
        deadline = time.monotonic() + 20
        while True:
            try:
                assert authed.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with redis.Redis(port=port) as anonymous, pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
        assert authed.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        authed.close()
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_flower_from_deploy_requires_basic_auth(redis_url):
    """deploy/flower.sh serves Flower only to requests with the configured credentials."""
    port = _free_port()
    process = subprocess.Popen(
        ["bash", str(DEPLOY / "flower.sh")],
        env=_env(
            NEWSFLOW_BROKER_URL=redis_url, FLOWER_BASIC_AUTH="ops:pw-for-test", FLOWER_WAIT_ATTEMPTS="0",
            FLOWER_PORT=str(port),
        ),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        status = None
        while status is None:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    status = 200
            except urllib.error.HTTPError as exc:
                status = exc.code
                exc.close()
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("flower did not start")
                time.sleep(0.3)
        assert status == 401
        token = base64.b64encode(b"ops:pw-for-test").decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
