"""Servers the benchmarks start as separate processes (no imports here)."""
