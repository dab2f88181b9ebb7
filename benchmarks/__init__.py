"""Benchmarks: ratios and throughputs measured side by side in one run (never timed tests)."""
