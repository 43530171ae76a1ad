"""Benchmarks: scripts that print figures beside baselines measured in the same run (not tests)."""
