"""`health` and `metrics`: probes and the Prometheus exporter (logic in `workers/health.py`, `workers/metrics.py`)."""

from typing import Annotated

import typer

from workers.cli.base import JsonOpt, app, out, settings_for


@app.command()
def health(
    json_out: JsonOpt = False,
    queues: Annotated[
        str, typer.Option("--queues", "-Q", help="Stages whose needs to check (tag adds the tagger model).")
    ] = "clean,dedup,tag,store",
    load_model: Annotated[
        bool, typer.Option("--load-model", help="Load the tagger model (slow) instead of finding it.")
    ] = False,
) -> None:
    """Check the database (schema at head), Redis and the tagger model; exit 1 if any fails.

    For readiness and liveness probes; a worker runs the same checks before it starts.
    """
    from workers import health as checks

    settings = settings_for()
    stages = [q.strip().removeprefix("newsflow.") for q in queues.split(",") if q.strip()]
    text, code = checks.report(checks.check_all(settings, stages, load_model=load_model), as_json=json_out)
    out.print(text, markup=False, highlight=False)
    raise typer.Exit(code)


@app.command("metrics")
def metrics_command(
    port: Annotated[int, typer.Option(help="Port to serve /metrics on.")] = 9809,
    address: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
) -> None:
    """Serve the pipeline's gauges for Prometheus.

    Queue depths (waiting, unacked, scheduled retries), open dead letters, stored articles and
    producer counts; the workers serve their own stage counters on NEWSFLOW_METRICS_PORT.
    """
    from workers import metrics

    metrics.serve_exporter(settings_for(), port=port, address=address)
