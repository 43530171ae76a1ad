"""`health` and `metrics`: probes and the Prometheus exporter (logic in `workers/runtime/health.py`, `workers/runtime/metrics.py`)."""

from typing import Annotated

import typer

from workers.cli.base import EXIT_USAGE, DbOpt, JsonOpt, app, fail, out, settings_for


@app.command()
def health(
    json_out: JsonOpt = False,
    queues: Annotated[
        str, typer.Option("--queues", "-Q", help="Stages whose needs to check (tag adds the tagger model).")
    ] = "clean,dedup,tag,store",
    load_model: Annotated[
        bool, typer.Option("--load-model", help="Load the tagger model (slow) instead of finding it.")
    ] = False,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Liveness only: the worker (--worker) beat from its consumer's event loop in the last "
            "--max-age seconds and its process exists (its private heartbeat file; no database, no Redis).",
        ),
    ] = False,
    worker: Annotated[
        str | None,
        typer.Option(
            "--worker",
            help="With --live: the worker's name (its --hostname before the @, e.g. newsflow-clean); "
            "default: NEWSFLOW_WORKER_NAME, else newsflow- and NEWSFLOW_QUEUES, as deploy/worker.sh names it.",
        ),
    ] = None,
    max_age: Annotated[int, typer.Option(help="Oldest heartbeat --live accepts, in seconds.")] = 60,
    db: DbOpt = None,
) -> None:
    """Check the database (schema at head), Redis and the tagger model; exit 1 if any fails.

    For readiness probes ("its dependencies answer"); a worker runs the same checks before it
    starts. An unknown stage in --queues is a usage error (exit 2).

    With --live, the liveness probe ("this worker consumes"): only whether the worker's consumer
    wrote its heartbeat file from its event loop (or while it reconnects to the broker) in the last
    --max-age seconds and its process still exists, so a database or Redis outage never restarts a
    worker, and a worker whose consumer died fails at once. Each worker has its own file in a
    private directory (NEWSFLOW_HEARTBEAT_DIR, default $XDG_RUNTIME_DIR/newsflow or $TMPDIR/newsflow-UID).
    """
    from workers.runtime import health as checks
    from workers.runtime.pipeline import STAGE_NAMES

    if live:
        text, code = checks.report([checks.check_alive(max_age, worker)], as_json=json_out)
        out.print(text, markup=False, highlight=False)
        raise typer.Exit(code)

    stages = [q.strip().removeprefix("newsflow.") for q in queues.split(",") if q.strip()]
    unknown = [s for s in stages if s not in STAGE_NAMES]
    if unknown or not stages:
        fail(
            f"--queues: unknown stage(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"stages are {', '.join(STAGE_NAMES)}",
            EXIT_USAGE,
        )
    settings = settings_for(db)
    text, code = checks.report(checks.check_all(settings, stages, load_model=load_model), as_json=json_out)
    out.print(text, markup=False, highlight=False)
    raise typer.Exit(code)


@app.command("metrics")
def metrics_command(
    port: Annotated[int, typer.Option(help="Port to serve /metrics on.")] = 9809,
    address: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    db: DbOpt = None,
) -> None:
    """Serve the pipeline's gauges for Prometheus.

    Queue depths (waiting, unacked, scheduled retries), open dead letters, stored articles and
    producer counts; the workers serve their own stage counters on NEWSFLOW_METRICS_PORT.
    """
    from workers.core.logging import configure_logging
    from workers.runtime import metrics

    settings = settings_for(db)
    configure_logging(settings.log_format, settings.log_level)  # a service: its start is an info line
    metrics.serve_exporter(settings, port=port, address=address)
