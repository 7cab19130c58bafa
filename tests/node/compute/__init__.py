"""Tests of the compute node: real SQLite files, real child processes."""
