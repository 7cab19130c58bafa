"""`golem-task-api`: run Task API apps on this machine (design.md, layer 4).

Only the argument parser is imported here; each command imports what it
needs, so `golem-task-api status` never loads gRPC.
"""

from golem_task_api.node.cli.main import main

__all__ = ["main"]
