"""Tests of the node (design.md, layer 4)."""
