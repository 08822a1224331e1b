"""Reproducible performance measurements. Run all with ``make bench`` (``python -m benchmarks``)."""
