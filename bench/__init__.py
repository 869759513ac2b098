"""The benchmarks: each module a script run as `.venv/bin/python bench/NAME.py`;
what several share is in `bench._support` (docs/performance.md)."""
