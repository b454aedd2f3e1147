"""Benchmarks: per-sample latency, time-vs-weights sweeps, latency budgets."""
