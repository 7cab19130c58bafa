"""Node info: capacity total / used / free / queued and execution counts."""

from golem_task_api.node.compute.capacity import Resources
from golem_task_api.node.compute.states import ExecutionState
from tests.node.compute.conftest import NodeFactory
from tests.node.compute.helpers import GateRunner, make_offer, work

S = ExecutionState


async def test_node_info_numbers(make_node: NodeFactory) -> None:
    runner = GateRunner()
    node = await make_node(runner, total=Resources(4, 4096), max_passes=0)
    empty = node.info()
    assert (empty.total, empty.used, empty.free, empty.queued) == (
        Resources(4, 4096),
        Resources(),
        Resources(4, 4096),
        Resources(),
    )
    assert empty.job_max == Resources(4, 4096)
    assert (empty.running_executions, empty.queued_executions, empty.held_for) == (0, 0, None)
    assert set(empty.executions.values()) == {0} and empty.benchmarks == ()

    ids = {}
    for name, cpu, memory in (("a", 2, 1024), ("b", 3, 512), ("c", 1, 256), ("d", 1, 256)):
        bid = await node.ask_for_bid(make_offer(name, cpu=cpu, memory_mib=memory))
        assert bid.execution_id is not None
        ids[name] = bid.execution_id
        if name != "d":  # d is only bid for
            await node.bid_accepted(bid.execution_id, work())

    info = node.info()
    assert info.used == Resources(2, 1024)
    assert info.free == Resources(2, 3072)
    assert info.queued == Resources(4, 768)  # b and c
    assert (info.running_executions, info.queued_executions) == (1, 2)
    assert info.held_for == ids["b"]  # strict FIFO: c waits behind b
    assert info.executions[S.RUNNING] == 1
    assert info.executions[S.BID_ACCEPTED] == 2
    assert info.executions[S.CREATED] == 1

    await runner.wait_started(ids["a"])
    runner.release(ids["a"])
    await node.wait_for(ids["a"], {S.AWAITING_VERIFICATION})
    after = node.info()
    assert after.used == Resources(4, 768)  # b and c both started
    assert (after.running_executions, after.queued_executions) == (2, 0)
    assert after.queued == Resources() and after.held_for is None
    assert after.executions[S.AWAITING_VERIFICATION] == 1
    assert after.executions[S.RUNNING] == 2
