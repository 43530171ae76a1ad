"""`serve`: the HTTP service (logic in `workers/serve/`)."""

from typing import Annotated

import typer

from workers.cli.base import EXIT_USAGE, app, fail, settings_for


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Proxies whose X-Forwarded-For is trusted (the nginx in front), comma-separated."),
    ] = None,
) -> None:
    """Serve articles over HTTP: POST /v1/articles, GET /v1/articles/{id}, GET /v1/changes.

    Bearer tokens with scopes (submit, read) come from NEWSFLOW_SERVE_TOKENS_FILE or
    NEWSFLOW_SERVE_TOKENS (NAME SCOPES TOKEN per entry). Also /healthz, /livez, /metrics and
    /openapi.json. Limits: NEWSFLOW_SERVE_BODY_LIMIT, NEWSFLOW_SERVE_BODY_TIMEOUT,
    NEWSFLOW_SERVE_MAX_RECORDS, NEWSFLOW_SERVE_CONCURRENT_SUBMITS; 429 above NEWSFLOW_HIGH_WATER_MARK.
    """
    from workers.serve.auth import TokenConfigError, load_tokens
    from workers.serve.server import run

    settings = settings_for()
    try:
        if not load_tokens(settings):
            fail(
                "no bearer tokens: set NEWSFLOW_SERVE_TOKENS_FILE (NAME SCOPES TOKEN per line) or NEWSFLOW_SERVE_TOKENS"
            )
    except TokenConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    if workers < 1:
        fail("--workers must be at least 1", EXIT_USAGE)
    run(settings, host=host, port=port, workers=workers, forwarded_allow_ips=forwarded_allow_ips)
