"""Helpers for the tests and the benchmarks that are not part of the package (``tests/`` is on
sys.path under pytest; a benchmark puts it there itself)."""
