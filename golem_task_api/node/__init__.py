"""The node: runs Task API apps end to end (design.md, layer 4)."""
