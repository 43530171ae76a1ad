"""Helpers of the bad-input corpus: per-case peak memory, the figures' summary, and (for the
distributed cases) one worker pool on the private Redis and PostgreSQL shared by the module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MEASUREMENTS: list[str] = []
"""One line per case run: mode, case, outcome, seconds and peak RSS growth; printed at the end."""


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_reset() -> float:
    """Reset this process's peak RSS to its current RSS (Linux clear_refs 5); returns that RSS in MB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("peak RSS cannot be reset on this system (needs Linux /proc/self/clear_refs)")
    return _status_kib("VmRSS") / 1024


def peak_rss_mb() -> float:
    """Peak RSS of this process since the last reset, in MB."""
    return _status_kib("VmHWM") / 1024


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the corpus's measured figures (also for xfail cases: measured before the check)."""
    if MEASUREMENTS and not os.environ.get("NEWSFLOW_BADINPUT_QUIET"):
        terminalreporter.section("bad-input corpus: outcome, time, peak RSS growth")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)
