"""Smoke run of bench/throughput.py --quick: every mode runs and reports consistent figures."""

import json
import subprocess
import sys

from tests.samples import ROOT


def test_quick_throughput_bench_reports_every_mode_against_the_floor() -> None:
    """The quick bench prints one table whose rows (floor, embedded, one worker, producer) carry rates,
    CPU of every process, per-stage times, round trips and ratios against the floor of the same run."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "throughput.py"), "--quick", "--repo-corpus", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| floor (stage functions, no DB) | " in done.stdout
    report = json.loads(done.stdout.strip().splitlines()[-1])
    rows = {r["mode"].split(" (")[0].split(",")[0]: r for r in report["rows"]}
    assert set(rows) == {"floor", "newsflow run", "newsflow worker -c 1", "newsflow enqueue"}
    floor, embedded, worker = rows["floor"], rows["newsflow run"], rows["newsflow worker -c 1"]
    assert floor["rate_vs_floor"] == 1.0
    assert floor["rate"] > 0
    for row in (embedded, worker):
        assert 0 < row["rate_vs_floor"] < 1.5, row
        assert row["cpu_ms"] > 0
        assert set(row["stage_ms"]) == {"clean", "dedup", "tag", "store"}, row
        # Stages write in transactions a micro-batch shares, so per article it is a fraction, never 0.
        assert row["transactions"] > 0, row
    assert set(embedded["stage_round_trips"]) == {"clean", "dedup", "tag", "store"}
    assert all(v > 0 for v in embedded["stage_round_trips"].values())
    assert set(worker["cpu_s"]) == {"worker", "redis", "postgres", "producer"}
    assert worker["cpu_s"]["worker"] > 0
    assert worker["server_statements"] > 0
    assert worker["rss_mb"]["worker child (max)"] > 100  # the model is loaded in the child
    assert rows["newsflow enqueue"]["rate"] > 0
