"""Running the application under uvicorn: one process (or `workers` processes) on one address."""

from workers.core.settings import Settings

LIMIT_CONCURRENCY = 200
"""Connections one process holds at once; uvicorn answers 503 past it (each holds at most a body limit
only while it is one of the NEWSFLOW_SERVE_CONCURRENT_SUBMITS submissions read at once)."""


def run(
    settings: Settings, *, host: str, port: int, workers: int = 1, forwarded_allow_ips: str | None = None
) -> None:
    """Serve until stopped (SIGTERM or Ctrl-C ends the requests in flight, then exits). Checks the tokens
    before binding, so a malformed token file stops the start with its message."""
    import uvicorn

    from workers.serve.auth import load_tokens

    load_tokens(settings)
    uvicorn.run(
        "workers.serve.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # the app logs one line per request, by token name
        server_header=False,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        limit_concurrency=LIMIT_CONCURRENCY,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=30,
        log_config=None,  # the app's logging setup (structlog) renders uvicorn's lines too
    )
