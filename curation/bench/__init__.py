"""Benchmarks (``python -m curation.bench --help``): measured, printed with their baselines,
never asserted in tests."""
