"""Saves and loads multiplexed over one Pipeline stream: shared by threads, replaced
when the server goes away, and given up for unary calls when the server has none."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import pytest
from burr.core import State

from burr_grpc_persister import (
    AlreadyExistsError,
    GrpcStatePersister,
    StateTooLargeError,
)
from burr_grpc_persister._gen import state_persister_pb2 as pb
from burr_grpc_persister._gen.state_persister_pb2_grpc import (
    StatePersisterServicer,
    add_StatePersisterServicer_to_server,
)
from conftest import MAX_MESSAGE_BYTES
from helpers import new_app_id


def count_pipelined(persister) -> list[int]:
    """Counts the calls each Pipeline stream of ``persister`` carries, one entry per stream opened."""
    streams: list[int] = []
    open_stream = persister._pipeline._open_stream

    def counting(requests, **options):
        index = len(streams)
        streams.append(0)

        def counted():
            for request in requests:
                streams[index] += 1
                yield request

        async def acounted():
            async for request in requests:
                streams[index] += 1
                yield request

        return open_stream(acounted() if hasattr(requests, "__aiter__") else counted(), **options)

    persister._pipeline._open_stream = counting
    return streams


def run_threads(count: int, work) -> list[BaseException]:
    """Runs ``work(index)`` in ``count`` threads started together; returns what they raised."""
    start = threading.Barrier(count)
    failures: list[BaseException] = []

    def guarded(index: int):
        start.wait()
        try:
            work(index)
        except BaseException as error:  # reported by the test, from the main thread
            failures.append(error)

    workers = [threading.Thread(target=guarded, args=(index,)) for index in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return failures


def test_threads_share_one_pipeline_and_each_call_gets_its_own_answer(server, partition):
    threads, steps = 8, 25
    persister = GrpcStatePersister.from_values("127.0.0.1", server.port)
    streams = count_pipelined(persister)
    duplicates: list[tuple[int, int]] = []

    def work(thread: int):
        app_id = f"app-{thread}"
        for step in range(steps):
            persister.save(
                partition, app_id, step, "step", State({"thread": thread, "step": step}), "completed"
            )
            if step % 5 == 0:  # fails alone: the other threads' calls in flight succeed
                try:
                    persister.save(partition, app_id, step, "step", State({"thread": -1}), "completed")
                except AlreadyExistsError:
                    duplicates.append((thread, step))
            assert persister.load(partition, app_id, step)["state"].get_all() == {
                "thread": thread,
                "step": step,
            }
            assert persister.load(partition, app_id)["sequence_id"] == step

    assert run_threads(threads, work) == []
    assert sorted(duplicates) == [(thread, step) for thread in range(threads) for step in range(0, steps, 5)]
    assert sum(streams) == threads * (3 * steps + steps // 5)  # every call went on the pipeline
    persister.cleanup()


def test_an_idle_pipeline_ends_and_the_next_call_opens_another(persister, partition):
    streams = count_pipelined(persister)
    persister.save(partition, "app", 0, "step", State({"n": 0}), "completed")
    time.sleep(0.6)
    assert persister._pipeline._current is None
    assert persister.load(partition, "app")["state"]["n"] == 0
    assert streams == [1, 1]


def test_states_of_a_mebibyte_go_unary(persister, partition):
    streams = count_pipelined(persister)
    # The shared server's limit is 1 MiB: refused as it would be on the pipeline, but on its own stream.
    with pytest.raises(StateTooLargeError):
        persister.save(partition, "app", 0, "step", State({"blob": "x" * MAX_MESSAGE_BYTES}), "completed")
    assert streams == []


@pytest.mark.parametrize("stop", ["stop", "kill"])  # SIGTERM (the server drains) or SIGKILL
def test_calls_recover_when_the_server_restarts_under_an_open_pipeline(own_server, partition, stop):
    own_server.start()
    persister = GrpcStatePersister.from_values(
        "127.0.0.1", own_server.port, retry_attempts=60, retry_max_backoff_seconds=0.5
    )
    streams = count_pipelined(persister)
    app_ids = [new_app_id() for _ in range(4)]
    for app_id in app_ids:
        persister.save(partition, app_id, 0, "step", State({"app_id": app_id}), "completed")
    loads = [0] * len(app_ids)
    restarted, recovered = threading.Event(), threading.Event()

    def keep_loading(index: int):
        # Loads in flight when the server goes are retried (UNAVAILABLE), on a new stream.
        while not recovered.is_set():
            assert persister.load(partition, app_ids[index])["state"]["app_id"] == app_ids[index]
            loads[index] += 1
            if restarted.is_set() and all(loads):
                recovered.set()

    loaders = threading.Thread(target=lambda: failures.extend(run_threads(len(app_ids), keep_loading)))
    failures: list[BaseException] = []
    loaders.start()
    time.sleep(0.3)  # the loaders' pipeline is open and busy
    getattr(own_server, stop)()
    own_server.start()
    loads[:] = [0] * len(loads)
    restarted.set()
    recovered.wait(30)
    recovered.set()  # stops the loaders whatever happened
    loaders.join()

    assert failures == [] and all(loads), "every loader loads again after the restart"
    assert len(streams) >= 2
    persister.save(partition, app_ids[0], 1, "step", State({"app_id": "next"}), "completed")
    assert persister.load(partition, app_ids[0])["sequence_id"] == 1
    persister.cleanup()


class UnaryOnlyServicer(StatePersisterServicer):
    """A server from before Pipeline: Save and Load from memory, Pipeline left UNIMPLEMENTED."""

    def __init__(self):
        self.rows: dict[tuple[str, str, int, str], pb.PersistedState] = {}
        self.calls = {"Save": 0, "Load": 0}
        self.lock = threading.Lock()

    def Save(self, request, context):
        key = (request.partition_key, request.app_id, request.sequence_id, request.position)
        row = pb.PersistedState(
            partition_key=request.partition_key,
            app_id=request.app_id,
            sequence_id=request.sequence_id,
            position=request.position,
            state=request.state,
            status=request.status,
        )
        row.created_at.GetCurrentTime()
        with self.lock:
            self.calls["Save"] += 1
            if key in self.rows:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, "already saved")
            self.rows[key] = row
        return pb.SaveResponse(created_at=row.created_at)

    def Load(self, request, context):
        with self.lock:
            self.calls["Load"] += 1
            rows = [
                row
                for (partition_key, app_id, *_), row in self.rows.items()
                if (partition_key, app_id) == (request.partition_key, request.app_id)
            ]
        rows = [
            row
            for row in rows
            if not request.HasField("sequence_id") or row.sequence_id == request.sequence_id
        ]
        if not rows:
            return pb.LoadResponse()
        return pb.LoadResponse(persisted_state=max(rows, key=lambda row: row.sequence_id))


@pytest.fixture
def unary_only_server():
    servicer = UnaryOnlyServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    add_StatePersisterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(None)


def test_without_pipeline_on_the_server_calls_go_unary(unary_only_server):
    servicer, port = unary_only_server
    threads = 4
    with GrpcStatePersister.from_values("127.0.0.1", port) as persister:

        def work(thread: int):  # all start together: every first call meets UNIMPLEMENTED
            persister.save("p", f"app-{thread}", 0, "step", State({"thread": thread}), "completed")
            assert persister.load("p", f"app-{thread}")["state"]["thread"] == thread

        assert run_threads(threads, work) == []
        assert persister._pipeline.supported is False
        with pytest.raises(AlreadyExistsError):
            persister.save("p", "app-0", 0, "step", State({"thread": -1}), "completed")
        assert persister.load("p", "app-0", 0)["state"]["thread"] == 0
    # Each save was stored by exactly one unary call: the pipeline ran nothing.
    assert servicer.calls == {"Save": threads + 1, "Load": threads + 1}
