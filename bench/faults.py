"""Long versions of the fault tests: the same scenarios and ledger checker as
`tests/integration/test_faults.py`, with outages and freezes of minutes instead of seconds.

    .venv/bin/python bench/faults.py [--outage 180] [--freeze 120] [--pause 150] [-k EXPRESSION]

Runs the fault tests with `NEWSFLOW_FAULT_OUTAGE_S` (the F3 test keeps Redis down that long, then brings it
back empty), `NEWSFLOW_FAULT_FREEZE_S` (Redis, then PostgreSQL, frozen by SIGSTOP that long with work in
flight) and `NEWSFLOW_FAULT_PAUSE_S` (a worker paused by SIGSTOP inside a store task, past its soft time
limit, that much longer after another worker stored its article) and prints each test's `ledger:` line
(enqueued, stored, dead-lettered, lost, duplicated, entity mismatches, foreign rows, stored and
dead-lettered: must be 0) and the pytest summary. `--outage 180` is the 3-minute outage of issue 13;
`--freeze 120` and `--pause 150` are issue 19's.

    .venv/bin/python bench/faults.py --producer

runs the producer's cases (`tests/test_producer_outages.py`: Redis at `maxmemory` with `noeviction`,
PostgreSQL frozen with SIGSTOP, articles persisted but never published) and prints their ledgers.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# --- producer faults: Redis at maxmemory (noeviction), PostgreSQL frozen, persisted-never-published ---


def producer_cases() -> int:
    """Run the producer's fault cases (`tests/test_producer_outages.py`, real Redis and PostgreSQL) and
    print each `ledger:` line (persisted, queued, never published, lost, duplicated); pytest's exit code."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "tests/test_producer_outages.py",
        "-s",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if "ledger:" in line or " passed" in line or " failed" in line:
            print(line[line.index("ledger:") :] if "ledger:" in line else line)
    if proc.returncode:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")
    return proc.returncode


def main() -> int:
    """Run the fault tests with a long outage; return pytest's exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=180.0, help="Seconds Redis stays down in F3.")
    parser.add_argument(
        "--freeze", type=float, default=120.0, help="Seconds Redis, then PostgreSQL, stay frozen."
    )
    parser.add_argument(
        "--pause", type=float, default=150.0, help="Extra seconds a paused worker stays stopped."
    )
    parser.add_argument("-k", default="", help="Only the fault tests matching this pytest expression.")
    parser.add_argument(
        "--producer",
        action="store_true",
        help="Run the producer's cases instead: Redis at maxmemory, PostgreSQL frozen, persisted-never-published.",
    )
    args = parser.parse_args()
    if args.producer:
        return producer_cases()
    env = {
        **os.environ,
        "NEWSFLOW_FAULT_OUTAGE_S": str(args.outage),
        "NEWSFLOW_FAULT_FREEZE_S": str(args.freeze),
        "NEWSFLOW_FAULT_PAUSE_S": str(args.pause),
    }
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "tests/integration/test_faults.py",
        "-s",
        "-q",
        "-p",
        "no:cacheprovider",
        # Minutes of freeze plus the recovery: above the suite's 300 s per test.
        f"--timeout={int(600 + 2 * max(args.outage, args.freeze, args.pause))}",
    ]
    if args.k:
        argv += ["-k", args.k]
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if "ledger:" in line or " passed" in line or " failed" in line:
            print(line.lstrip("."))
    if proc.returncode:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
