"""Fork checks of GrpcStatePersister, run by test_fork.py in a fresh Python process.

gRPC core skips its fork handlers while another thread is inside gRPC (the channel's poller
with the BatchedPipeline stream open, grpc.aio's poller once any async test ran) and the child then
inherits gRPC mid-operation: it crashed in 2 runs of 20 even with only the sync persister in the
process. So the checks run as a forking application must: in a process of their own, with gRPC's
fork support on (GRPC_ENABLE_FORK_SUPPORT=1, read when grpc is imported), under which gRPC
pauses its threads around fork() and the child gets a clean gRPC. Each child first checks that
the persister let go of what it inherited (gRPC's fork support would otherwise hide a persister
that keeps the parent's channel), then calls through its own.

Usage: GRPC_ENABLE_FORK_SUPPORT=1 python forked_children.py <check> <port> <partition>; exit
status 0 when the check passes.
"""

from __future__ import annotations

import os
import sys

from burr.core import State

from burr_grpc_persister import GrpcStatePersister


def started_over(persister: GrpcStatePersister) -> bool:
    """Whether the persister's after-fork handler dropped the parent's channel and pipeline."""
    return persister._channel is None and persister._pipeline._current is None


def in_child(work) -> int:
    """Runs ``work()`` in a forked child; its exit code: 0 if it returned True, 1 if False, 2 if it raised."""
    child = os.fork()
    if child == 0:  # the child reports by its exit code only
        try:
            os._exit(0 if work() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


def pipeline(persister: GrpcStatePersister, partition: str):
    """A child opens its own channel and pipeline: the inherited ones are served by the parent's threads."""
    persister.save(partition, "parent", 0, "step", State({"n": 0}), "completed")  # the pipeline is open

    def child() -> bool:
        if not started_over(persister):
            return False
        persister.save(partition, "child", 0, "step", State({"n": 1}), "completed")
        return persister.load(partition, "parent")["state"]["n"] == 0

    assert in_child(child) == 0
    assert persister.load(partition, "child")["state"]["n"] == 1


def list_and_delete(persister: GrpcStatePersister, partition: str):
    """A child lists and deletes on its own channel (streaming and unary calls, not the pipeline)."""
    for sequence_id in (0, 1):
        persister.save(partition, "a", sequence_id, "s", State({"n": sequence_id}), "completed")
    assert [step["sequence_id"] for step in persister.list_steps(partition, "a")] == [1, 0]

    def child() -> bool:
        if not started_over(persister):
            return False
        listed = [step["sequence_id"] for step in persister.list_steps(partition, "a")]
        return listed == [1, 0] and persister.delete_app(partition, "a") == 2

    assert in_child(child) == 0
    assert list(persister.list_steps(partition, "a")) == []
    assert persister.load(partition, "a") is None


CHECKS = {"pipeline": pipeline, "list_and_delete": list_and_delete}

if __name__ == "__main__":
    if os.environ.get("GRPC_ENABLE_FORK_SUPPORT") != "1":
        sys.exit("run with GRPC_ENABLE_FORK_SUPPORT=1 (read when grpc is imported)")
    check, port, partition = sys.argv[1:]
    # Short deadlines: a child stuck on what it inherited fails in seconds instead of hanging.
    deadlines = {"deadline_seconds": 5, "list_deadline_seconds": 5, "delete_deadline_seconds": 5}
    with GrpcStatePersister.from_values("127.0.0.1", int(port), **deadlines) as persister:
        CHECKS[check](persister, partition)
