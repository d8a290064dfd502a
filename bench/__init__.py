"""Benchmarks (run by hand; a smoke size runs in the test suite so they never rot)."""
