"""The requestor side of the node: app processes, task runs, verification, delivery."""
