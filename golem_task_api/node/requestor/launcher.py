"""`python -m golem_task_api.node.requestor.launcher MODULE ARGS...`: run an app
that dies with the node.

A requestor app runs in a session of its own (so that stopping it stops its
children), which also means it outlives a node killed by SIGKILL, holding
its task state open until the next start kills it. On Linux this launcher
asks the kernel to SIGKILL the app when its parent (the node) dies, then
runs MODULE as `python -m MODULE ARGS...` would.
"""

import ctypes
import ctypes.util
import os
import runpy
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    # The node may have died before the request took effect.
    if os.getppid() != parent:
        os._exit(1)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m golem_task_api.node.requestor.launcher MODULE [ARGS...]")
    module = sys.argv[1]
    _die_with_parent()
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
