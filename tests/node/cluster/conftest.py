"""A real Dask cluster on loopback: a scheduler and two worker processes (one
thread each), started once for the module that asks for it."""

from collections.abc import Iterator

import pytest
from distributed import LocalCluster


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The scheduler's address (tcp://127.0.0.1:PORT) of a running local cluster."""
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=":0",
    )
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()
