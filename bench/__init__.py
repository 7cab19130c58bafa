"""Benchmarks of the framework: `python -m bench [NAME ...]` (see README.md).

Kept free of imports: `bench.apps.*` are started as cold processes, and
every import here would be counted in their start-up time.
"""
