"""Saves and loads multiplexed over one BatchedPipeline stream: shared by threads, the calls
queued together sent in one message, replaced when the server goes away, and given up for unary
calls when the server has none."""

from __future__ import annotations

import asyncio
import contextlib
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
    StatePersisterStub,
    add_StatePersisterServicer_to_server,
)
from burr_grpc_persister._pipeline import (
    _END,
    MAX_BATCH_BYTES,
    MAX_BATCH_CALLS,
    CallPipeline,
    PipelineCallError,
    _batch,
    _request,
)
from conftest import MAX_MESSAGE_BYTES
from helpers import new_app_id


def record_pipelined(pipeline) -> list[list[int]]:
    """Records what each stream of ``pipeline`` (a persister's ``_pipeline``) sends: one list per
    stream opened, holding how many calls each of its messages carried."""
    streams: list[list[int]] = []
    open_stream = pipeline._open_stream

    def recording(requests, **options):
        messages: list[int] = []
        streams.append(messages)

        def recorded():
            for request in requests:
                messages.append(len(request.calls))
                yield request

        async def arecorded():
            async for request in requests:
                messages.append(len(request.calls))
                yield request

        return open_stream(arecorded() if hasattr(requests, "__aiter__") else recorded(), **options)

    pipeline._open_stream = recording
    return streams


def calls_per_stream(streams: list[list[int]]) -> list[int]:
    return [sum(messages) for messages in streams]


def hold_first_message(pipeline, calls: int):
    """Makes the first stream of ``pipeline`` send nothing until ``calls`` calls wait on it, so
    that its first message carries them all: batching shown without depending on timing."""
    open_stream = pipeline._open_stream
    opened = []

    def waiting() -> bool:
        stream = pipeline._current
        return stream is None or len(stream.pending) < calls

    def holding(requests, **options):
        opened.append(requests)
        if len(opened) > 1:
            return open_stream(requests, **options)

        def held():
            while waiting():
                time.sleep(0.001)
            yield from requests

        async def aheld():
            while waiting():
                await asyncio.sleep(0.001)
            async for request in requests:
                yield request

        return open_stream(aheld() if hasattr(requests, "__aiter__") else held(), **options)

    pipeline._open_stream = holding


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
    streams = record_pipelined(persister._pipeline)
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
    assert sum(calls_per_stream(streams)) == threads * (3 * steps + steps // 5)  # all on the pipeline
    persister.cleanup()


def test_an_idle_pipeline_ends_and_the_next_call_opens_another(persister, partition):
    streams = record_pipelined(persister._pipeline)
    persister.save(partition, "app", 0, "step", State({"n": 0}), "completed")
    time.sleep(0.6)
    assert persister._pipeline._current is None
    assert persister.load(partition, "app")["state"]["n"] == 0
    assert streams == [[1], [1]]


def test_states_of_a_mebibyte_go_unary(persister, partition):
    streams = record_pipelined(persister._pipeline)
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
    streams = record_pipelined(persister._pipeline)
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
    """A server from before BatchedPipeline: Save and Load from memory, (Batched)Pipeline left
    UNIMPLEMENTED (a 0.2.0 server has Pipeline, which the client no longer uses)."""

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


@contextlib.contextmanager
def serving(servicer: StatePersisterServicer):
    """A Python gRPC server of ``servicer`` on loopback; yields its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    add_StatePersisterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


@pytest.fixture
def unary_only_server():
    servicer = UnaryOnlyServicer()
    with serving(servicer) as port:
        yield servicer, port


class FailingMidMessageServicer(StatePersisterServicer):
    """Answers half the calls of the first BatchedPipeline message (last first, proving answers
    are matched by call_id), then fails the stream."""

    def __init__(self):
        self.answered: list[str] = []

    def BatchedPipeline(self, request_iterator, context):
        calls = next(request_iterator).calls
        answered = list(reversed(calls[: len(calls) // 2]))
        self.answered = [call.save.app_id for call in answered]
        yield pb.BatchedPipelineResponse(
            answers=[pb.PipelineResponse(call_id=call.call_id, save=pb.SaveResponse()) for call in answered]
        )
        context.abort(grpc.StatusCode.UNAVAILABLE, "gone mid-message")


@pytest.fixture
def failing_mid_message_server():
    servicer = FailingMidMessageServicer()
    with serving(servicer) as port:
        yield servicer, port


def save_request(app_id: str, size: int = 0) -> pb.SaveRequest:
    return pb.SaveRequest(app_id=app_id, position="step", status=pb.STATUS_COMPLETED, state=b"x" * size)


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


def test_calls_queued_together_go_in_one_message_and_each_gets_its_own_answer(server, partition):
    threads = 16
    with GrpcStatePersister.from_values("127.0.0.1", server.port) as setup:
        for thread in range(threads):
            setup.save(partition, f"app-{thread}", 0, "step", State({"thread": thread}), "completed")
    with GrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
        streams = record_pipelined(persister._pipeline)
        hold_first_message(persister._pipeline, threads)
        outcomes: dict[int, object] = {}

        def work(thread: int):  # odd threads load, even ones save, thread 0 a save already made
            app_id = f"app-{thread}"
            if thread % 2:
                outcomes[thread] = persister.load(partition, app_id)["state"]["thread"]
                return
            try:
                sequence_id = 0 if thread == 0 else 1
                state = State({"thread": -thread})
                persister.save(partition, app_id, sequence_id, "step", state, "completed")
                outcomes[thread] = "saved"
            except AlreadyExistsError:
                outcomes[thread] = "already exists"

        assert run_threads(threads, work) == []
        assert streams[0][0] == threads  # one message carried every call
        assert outcomes == {
            thread: thread if thread % 2 else "saved" if thread else "already exists"
            for thread in range(threads)
        }
        for thread in range(2, threads, 2):
            assert persister.load(partition, f"app-{thread}")["state"]["thread"] == -thread


def test_a_stream_failing_mid_message_fails_exactly_the_calls_it_left_unanswered(failing_mid_message_server):
    servicer, port = failing_mid_message_server
    threads = 8
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        pipeline = CallPipeline(StatePersisterStub(channel).BatchedPipeline, deadline_seconds=30)
        streams = record_pipelined(pipeline)
        hold_first_message(pipeline, threads)
        outcomes: dict[str, object] = {}

        def work(thread: int):
            app_id = f"app-{thread}"
            try:
                outcomes[app_id] = type(pipeline.call(save_request(app_id))).__name__
            except PipelineCallError as error:
                outcomes[app_id] = (error.code(), error.details())

        assert run_threads(threads, work) == []
        pipeline.close()
    assert streams == [[threads]]
    assert len(servicer.answered) == threads // 2
    assert outcomes == {
        f"app-{thread}": "SaveResponse"
        if f"app-{thread}" in servicer.answered
        else (grpc.StatusCode.UNAVAILABLE, "gone mid-message")
        for thread in range(threads)
    }


def queued(*items):
    """take_ready for _batch: the items, then None (nothing more queued)."""
    remaining = iter(items)
    return lambda: next(remaining, None)


def test_a_message_holds_at_most_max_batch_calls_and_the_rest_stay_queued():
    calls = [_request(index, save_request(f"app-{index}")) for index in range(MAX_BATCH_CALLS + 2)]
    take_ready = queued(*calls[1:])
    message, left = _batch(calls[0], take_ready)
    assert list(message.calls) == calls[:MAX_BATCH_CALLS] and left is None
    rest = pb.BatchedPipelineRequest(calls=calls[MAX_BATCH_CALLS:])
    assert _batch(take_ready(), take_ready) == (rest, None)


def test_a_call_that_would_take_a_message_over_max_batch_bytes_starts_the_next():
    size = MAX_BATCH_BYTES // 3
    calls = [_request(index, save_request(f"app-{index}", size)) for index in range(4)]
    message, left = _batch(calls[0], queued(*calls[1:]))
    assert list(message.calls) == calls[:2] and left == calls[2]
    assert message.ByteSize() <= MAX_BATCH_BYTES


def test_a_call_over_max_batch_bytes_goes_alone():
    large, small = _request(1, save_request("app", MAX_BATCH_BYTES)), _request(2, save_request("app", 1))
    message, left = _batch(large, queued(small))
    assert list(message.calls) == [large] and left == small


def test_the_end_of_the_stream_is_handed_back_after_the_calls_before_it():
    first, second = (_request(index, save_request("app")) for index in (1, 2))
    message, left = _batch(first, queued(second, _END, _request(3, save_request("late"))))
    assert list(message.calls) == [first, second] and left is _END
