"""Benchmarks: each prints its figure, the baseline measured in the same run, and the ratio."""
