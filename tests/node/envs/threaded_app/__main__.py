"""sample_app, with a thread started at import: forking it is unsafe."""

import threading

from tests.node.envs.sample_app.__main__ import main

_forever = threading.Event()
threading.Thread(target=_forever.wait, name="started-at-import", daemon=True).start()

if __name__ == "__main__":
    main()
