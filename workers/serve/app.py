"""The Starlette application of `newsflow serve`.

Blocking work (the producer, database reads, Redis) runs in the thread pool; the event loop only reads
bodies and writes answers, so a slow client holds a connection, never the server.
"""

import functools
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import redis
from celery import Celery
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from schemas.limits import ARTICLE_ID_PATTERN
from workers.core.logging import get_logger
from workers.core.settings import Settings, get_settings
from workers.serve import openapi
from workers.serve.auth import AuthError, Token, TokenConfigError, authorize, load_tokens
from workers.serve.intake import BodyError, parse, read_body
from workers.serve.metrics import ServiceMetrics

log = get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ARTICLE_ID = re.compile(ARTICLE_ID_PATTERN)


class Busy(Exception):
    """The producer would wait (the clean queue above the high-water mark, Redis or the database away):
    answered 429 or 503 with Retry-After instead of holding the request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _refuse(line: str) -> None:
    """The producer's `on_wait`: instead of waiting, end the submission (what was persisted stays, and a
    resent batch publishes what was not)."""
    if line.startswith("queue "):
        raise Busy(429, "the pipeline is behind (its first queue is above the high-water mark); retry later")
    raise Busy(503, "Redis or the database is not answering; retry later")


@dataclass
class Service:
    """What the handlers share: settings, tokens, the Celery app, a Redis client and the metrics."""

    settings: Settings
    tokens: list[Token]
    celery: Celery
    redis: redis.Redis
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    submitting: int = 0

    def auth(self, request: Request, scope: str) -> Token:
        token = authorize(request.headers.get("authorization"), scope, self.tokens)
        request.state.token = token.name
        return token

    def busy(self, status: int, message: str) -> JSONResponse:
        return JSONResponse(
            {"error": message},
            status_code=status,
            headers={"Retry-After": str(self.settings.serve_retry_after)},
        )


_SAFE_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))


def _route(path: str) -> str:
    if path.startswith("/v1/articles/"):
        return "/v1/articles/{id}"
    return path


class _Observe:
    """One log line and the metrics per request; the token is never in either (its name is)."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        scope.setdefault("state", {})

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                # Answers are data for programs: never sniffed as something else, never cached by a proxy.
                message["headers"] = [*message.get("headers", []), *_SAFE_HEADERS]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = _route(scope["path"])
            self.service.metrics.observe(route, status[0], seconds)
            if route not in ("/healthz", "/livez", "/metrics"):
                log.info(
                    "http_request",
                    method=scope["method"],
                    route=route if route in openapi.PATHS else "other",
                    status=status[0],
                    duration_ms=round(seconds * 1000, 1),
                    token=scope["state"].get("token"),
                )


async def submit(request: Request) -> Response:
    """POST /v1/articles."""
    service: Service = request.app.state.service
    settings = service.settings
    service.auth(request, "submit")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        return JSONResponse({"error": "Content-Encoding is not supported; send the body as is"}, 415)
    if service.submitting >= settings.serve_concurrent_submits:
        return service.busy(429, "too many submissions in progress; retry later")
    ignore_unknown = request.query_params.get("ignore_unknown_fields", "false").lower() in (
        "1",
        "true",
        "yes",
    )
    service.submitting += 1
    service.metrics.submitting.inc()
    try:
        from workers.runtime.broker import queue_depth

        if await anyio.to_thread.run_sync(queue_depth, service.redis) > settings.high_water_mark:
            return service.busy(429, "the pipeline is behind (its first queue is above the high-water mark)")
        body = await read_body(
            request.stream(),
            declared=request.headers.get("content-length"),
            limit=settings.serve_body_limit,
            deadline_s=settings.serve_body_timeout,
        )
        service.metrics.body_bytes.inc(len(body))
        records = await anyio.to_thread.run_sync(
            functools.partial(parse, body, ignore_unknown=ignore_unknown)
        )
        del body
        if len(records) > settings.serve_max_records:
            raise BodyError(
                413, f"the body holds {len(records)} records, the limit is {settings.serve_max_records}"
            )
        valid = [r.article for r in records if r.article is not None]
        # The producer waits while the queue is above the mark less the messages of a batch: answer 429
        # instead when this submission would make it wait.
        messages = -(-min(len(valid), settings.producer_batch) // settings.batch_size)
        depth = await anyio.to_thread.run_sync(queue_depth, service.redis)
        if valid and depth > max(settings.high_water_mark - messages, 0):
            return service.busy(429, "the pipeline is behind (its first queue is near the high-water mark)")
        ids, new = await anyio.to_thread.run_sync(_persist, service, valid)
    except Busy as exc:
        return service.busy(exc.status, exc.message)
    finally:
        service.submitting -= 1
        service.metrics.submitting.dec()
    answer: list[dict[str, Any]] = []
    found = iter(ids)
    for index, record in enumerate(records):
        if record.article is not None:
            answer.append({"index": index, "id": next(found)})
        else:
            answer.append(
                {
                    "index": index,
                    "position": record.origin,
                    "errors": [{"field": p.field, "reason": p.reason} for p in record.problems],
                }
            )
    rejected = len(records) - len(valid)
    service.metrics.articles.labels("accepted").inc(len(valid))
    service.metrics.articles.labels("new").inc(new)
    service.metrics.articles.labels("rejected").inc(rejected)
    return JSONResponse(
        {"accepted": len(valid), "new": new, "rejected": rejected, "records": answer}, status_code=202
    )


def _persist(service: Service, articles: list[Any]) -> tuple[list[str], int]:
    """Persist and enqueue the valid articles as `newsflow enqueue` does; their ids in order, and how many
    were new. Busy instead of waiting."""
    from workers.ingest.producer import enqueue

    if not articles:
        return [], 0
    ids: list[str] = []
    report = enqueue(articles, service.settings, service.celery, on_sent=ids.append, on_wait=_refuse)
    return ids, report.new


async def article(request: Request) -> Response:
    """GET /v1/articles/{id}."""
    service: Service = request.app.state.service
    service.auth(request, "read")
    article_id = request.path_params["article_id"]
    if not _ARTICLE_ID.match(article_id):
        return JSONResponse({"error": "an article id is 32 lower-case hexadecimal characters"}, 404)

    def read() -> dict[str, Any] | None:
        from workers.db.engine import transaction
        from workers.ops.changes import article_document

        with transaction(service.settings.database_url) as session:
            return article_document(session, article_id)

    data = await anyio.to_thread.run_sync(read)
    if data is None:
        return JSONResponse({"error": "no such article"}, 404)
    return JSONResponse(data)


async def changes(request: Request) -> Response:
    """GET /v1/changes?after=CURSOR&limit=N."""
    from workers.ops.changes import MAX_LIMIT, Cursor
    from workers.ops.changes import changes as page_of

    service: Service = request.app.state.service
    service.auth(request, "read")
    try:
        after = Cursor.parse(request.query_params.get("after"))
    except ValueError as exc:
        return JSONResponse({"error": f"after: {exc}"}, 400)
    try:
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        return JSONResponse({"error": f"limit: a whole number from 1 to {MAX_LIMIT}"}, 400)

    def read() -> tuple[list[dict[str, Any]], Cursor]:
        from workers.db.engine import transaction

        with transaction(service.settings.database_url) as session:
            return page_of(session, after, limit)

    page, following = await anyio.to_thread.run_sync(read)
    return JSONResponse({"articles": page, "next": str(following)})


async def healthz(request: Request) -> Response:
    """GET /healthz: the database (schema at head) and Redis answer, as `newsflow health` checks them."""
    from dataclasses import asdict

    from workers.runtime import health

    settings: Settings = request.app.state.service.settings

    def check() -> list[health.Check]:
        return [
            health.check_database(settings.database_url),
            health.check_redis(settings.broker_url.unicode_string()),
        ]

    checks = await anyio.to_thread.run_sync(check)
    ok = all(c.ok for c in checks)
    return JSONResponse({"ok": ok, "checks": [asdict(c) for c in checks]}, 200 if ok else 503)


async def livez(_request: Request) -> Response:
    """GET /livez: the process answers (no database, no Redis: an outage never restarts it)."""
    return JSONResponse({"ok": True})


async def metrics(request: Request) -> Response:
    """GET /metrics: the service's series in Prometheus text format."""
    service: Service = request.app.state.service
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def schema(_request: Request) -> Response:
    """GET /openapi.json."""
    return JSONResponse(openapi.document())


async def _auth_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    headers = {"WWW-Authenticate": 'Bearer realm="newsflow"'} if exc.status == 401 else None
    return JSONResponse({"error": exc.message}, exc.status, headers=headers)


async def _body_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyError)
    # A body cut short (too large, too slow) leaves bytes on the connection: close it.
    headers = {"Connection": "close"} if exc.status in (408, 413) else None
    return JSONResponse({"error": exc.message}, exc.status, headers=headers)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)


async def _unavailable(request: Request, exc: Exception) -> Response:
    """Redis or the database failed a call (down, refused, timed out): 503, retry later."""
    log.warning("http_backend_unavailable", error_class=type(exc).__name__)
    service: Service = request.app.state.service
    return service.busy(503, "Redis or the database is not answering; retry later")


async def _gone(_request: Request, _exc: Exception) -> Response:
    """The client went away while sending its body: nothing was stored, and no one reads this answer."""
    return JSONResponse({"error": "the client went away"}, 400)


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.error("http_unexpected_error", error_class=type(exc).__name__)
    return JSONResponse({"error": "internal error; the server's log has the details"}, 500)


def create_app(settings: Settings | None = None, *, celery: Celery | None = None) -> Starlette:
    """The application; TokenConfigError when no token is configured or the tokens are malformed."""
    settings = settings or get_settings()
    tokens = load_tokens(settings)
    if not tokens:
        raise TokenConfigError(
            "no bearer tokens: set NEWSFLOW_SERVE_TOKENS_FILE (a file of NAME SCOPES TOKEN lines) "
            "or NEWSFLOW_SERVE_TOKENS"
        )
    if celery is None:
        from workers.runtime.celery_app import app as celery
    service = Service(
        settings,
        tokens,
        celery,
        redis.Redis.from_url(
            settings.broker_url.unicode_string(), socket_timeout=5, socket_connect_timeout=5
        ),
    )
    app = Starlette(
        routes=[
            Route("/v1/articles", submit, methods=["POST"]),
            Route("/v1/articles/{article_id}", article, methods=["GET"]),
            Route("/v1/changes", changes, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/livez", livez, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", schema, methods=["GET"]),
        ],
        exception_handlers={
            AuthError: _auth_error,
            BodyError: _body_error,
            HTTPException: _http_error,
            ClientDisconnect: _gone,
            redis.exceptions.RedisError: _unavailable,
            OperationalError: _unavailable,
            Exception: _unexpected,
        },
    )
    app.state.service = service
    app.add_middleware(_Observe, service=service)
    return app


def app_from_environment() -> Starlette:
    """The application with the process's settings, logging configured: what uvicorn's factory loads."""
    from workers.core.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
