"""An app whose import fails when it is not run as a script (for the template)."""

if __name__ != "__main__":
    raise ImportError("broken_app only runs as a script")

from tests.node.envs.sample_app.__main__ import main

main()
