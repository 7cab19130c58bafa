"""sample_app, opting out of warm start."""

from tests.node.envs.sample_app.__main__ import main

WARM_START = False

if __name__ == "__main__":
    main()
