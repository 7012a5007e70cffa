"""AsyncGrpcStatePersister's saves and loads multiplexed over one BatchedPipeline stream: shared
by tasks, the calls queued together sent in one message, replaced when the server goes away, one
per event loop, and given up for unary calls when the server has none or the state is large."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from burr.core import State

from burr_grpc_persister import (
    AlreadyExistsError,
    AsyncGrpcStatePersister,
    DeadlineExceededError,
    StateTooLargeError,
    UnavailableError,
)
from burr_grpc_persister import _async_pipeline
from burr_grpc_persister._gen.state_persister_pb2_grpc import StatePersisterStub
from burr_grpc_persister._pipeline import PipelineCallError
from conftest import MAX_MESSAGE_BYTES
from helpers import new_app_id
from test_pipeline import (  # noqa: F401
    UnaryOnlyServicer,
    calls_per_stream,
    failing_mid_message_server,
    hold_first_message,
    record_pipelined,
    save_request,
    unary_only_server,
)


def in_flight(persister: AsyncGrpcStatePersister) -> int:
    """How many calls wait for an answer on the persister's current stream."""
    stream = persister._pipeline._current
    return 0 if stream is None else len(stream.pending)


def test_concurrent_tasks_share_one_pipeline_and_each_call_gets_its_own_answer(server, partition):
    tasks = 200
    duplicates: list[int] = []

    async def work(persister, task: int):
        app_id = f"app-{task}"
        await persister.save(partition, app_id, 0, "step", State({"task": task, "blob": "x" * task}), "completed")
        if task % 10 == 0:  # fails alone: the other tasks' calls in flight succeed
            try:
                await persister.save(partition, app_id, 0, "step", State({"task": -1}), "completed")
            except AlreadyExistsError:
                duplicates.append(task)
        loaded = await persister.load(partition, app_id, 0)
        assert loaded["state"].get_all() == {"task": task, "blob": "x" * task}
        assert (await persister.load(partition, app_id))["app_id"] == app_id

    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            streams = record_pipelined(persister._pipeline)
            await asyncio.gather(*(work(persister, task) for task in range(tasks)))
            return streams

    streams = asyncio.run(scenario())
    assert sorted(duplicates) == list(range(0, tasks, 10))
    assert calls_per_stream(streams) == [3 * tasks + tasks // 10]  # one stream carried every call


def test_an_idle_pipeline_ends_and_the_next_call_opens_another(server, partition):
    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            streams = record_pipelined(persister._pipeline)
            await persister.save(partition, "app", 0, "step", State({"n": 0}), "completed")
            await asyncio.sleep(0.6)
            assert persister._pipeline._current is None
            assert (await persister.load(partition, "app"))["state"]["n"] == 0
            return streams

    assert asyncio.run(scenario()) == [[1], [1]]


def test_cleanup_ends_the_pipeline(server, partition, monkeypatch):
    monkeypatch.setattr(_async_pipeline, "IDLE_SECONDS", 60)  # only cleanup ends it

    async def scenario():
        persister = AsyncGrpcStatePersister.from_values("127.0.0.1", server.port)
        streams = record_pipelined(persister._pipeline)
        await persister.save(partition, "app", 0, "step", State({"n": 0}), "completed")
        reader = persister._pipeline._current.reader
        await persister.cleanup()
        assert persister._pipeline._current is None and reader.done()
        assert (await persister.load(partition, "app"))["state"]["n"] == 0
        await persister.cleanup()
        return streams

    assert asyncio.run(scenario()) == [[1], [1]]


def test_each_event_loop_gets_a_pipeline_of_its_own(server, partition, monkeypatch):
    monkeypatch.setattr(_async_pipeline, "IDLE_SECONDS", 60)  # the first loop's stream outlives it
    persister = AsyncGrpcStatePersister.from_values("127.0.0.1", server.port)
    streams = record_pipelined(persister._pipeline)

    async def save_then_load(sequence_id: int):
        await persister.save(partition, "app", sequence_id, "step", State({"n": sequence_id}), "completed")
        return (await persister.load(partition, "app"))["state"]["n"]

    assert asyncio.run(save_then_load(0)) == 0
    assert asyncio.run(save_then_load(1)) == 1  # a second asyncio.run: another loop, channel, stream
    assert streams == [[1, 1], [1, 1]]  # a save, then a load


def test_states_of_a_mebibyte_go_unary(server, partition):
    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            streams = record_pipelined(persister._pipeline)
            # The shared server's limit is 1 MiB: refused as on the pipeline, but on its own stream.
            with pytest.raises(StateTooLargeError):
                blob = "x" * MAX_MESSAGE_BYTES
                await persister.save(partition, "app", 0, "step", State({"blob": blob}), "completed")
            return streams

    assert asyncio.run(scenario()) == []


def test_a_server_lost_under_the_pipeline_fails_its_saves_retries_its_loads_and_a_new_stream_follows(
    own_server, partition
):
    own_server.start()
    app_ids = [new_app_id() for _ in range(5)]

    async def scenario():
        async with AsyncGrpcStatePersister.from_values(
            "127.0.0.1", own_server.port, retry_attempts=60, retry_max_backoff_seconds=0.5
        ) as persister:
            streams = record_pipelined(persister._pipeline)
            for app_id in app_ids:
                await persister.save(partition, app_id, 0, "step", State({"app_id": app_id}), "completed")
            own_server.pause()  # the calls below are sent and never answered
            saves = [
                asyncio.create_task(persister.save(partition, app_id, 1, "step", State({}), "completed"))
                for app_id in app_ids
            ]
            loads = [asyncio.create_task(persister.load(partition, app_id, 0)) for app_id in app_ids]
            while in_flight(persister) != len(app_ids) * 2:
                await asyncio.sleep(0.01)
            own_server.kill()
            # Saves are never retried: each fails with the stream's UNAVAILABLE.
            for outcome in await asyncio.gather(*saves, return_exceptions=True):
                assert isinstance(outcome, UnavailableError), repr(outcome)
            # Loads are: on a new stream, once the server is back.
            own_server.start()
            loaded = await asyncio.gather(*loads)
            assert [row["state"]["app_id"] for row in loaded] == app_ids
            await persister.save(partition, app_ids[0], 2, "step", State({"app_id": "next"}), "completed")
            assert (await persister.load(partition, app_ids[0]))["sequence_id"] == 2
            return streams

    assert len(asyncio.run(scenario())) >= 2


def test_a_call_unanswered_within_its_deadline_fails_and_the_pipeline_goes_on(own_server, partition):
    own_server.start()

    async def scenario():
        async with AsyncGrpcStatePersister.from_values(
            "127.0.0.1", own_server.port, deadline_seconds=1
        ) as persister:
            await persister.save(partition, "app", 0, "step", State({"n": 0}), "completed")
            own_server.pause()
            try:
                with pytest.raises(DeadlineExceededError):
                    await persister.load(partition, "app")
            finally:
                own_server.resume()
            assert (await persister.load(partition, "app"))["state"]["n"] == 0

    asyncio.run(scenario())


def test_without_pipeline_on_the_server_calls_go_unary(unary_only_server):  # noqa: F811
    servicer, port = unary_only_server
    tasks = 4

    async def work(persister, task: int):  # all start together: every first call meets UNIMPLEMENTED
        await persister.save("p", f"app-{task}", 0, "step", State({"task": task}), "completed")
        assert (await persister.load("p", f"app-{task}"))["state"]["task"] == task

    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", port) as persister:
            await asyncio.gather(*(work(persister, task) for task in range(tasks)))
            assert persister._pipeline.supported is False
            with pytest.raises(AlreadyExistsError):
                await persister.save("p", "app-0", 0, "step", State({"task": -1}), "completed")
            assert (await persister.load("p", "app-0", 0))["state"]["task"] == 0

    asyncio.run(scenario())
    # Each save was stored by exactly one unary call: the pipeline ran nothing.
    assert servicer.calls == {"Save": tasks + 1, "Load": tasks + 1}


def test_pipelined_errors_are_those_of_unary_calls(server, partition):
    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            await persister.save(partition, "app", 0, "step", State({}), "completed")
            with pytest.raises(AlreadyExistsError) as raised:
                await persister.save(partition, "app", 0, "step", State({}), "completed")
            return raised.value

    error = asyncio.run(scenario())
    assert error.code == grpc.StatusCode.ALREADY_EXISTS and "sequence_id=0" in str(error)


def test_the_fallback_holds_when_grpc_aio_loses_the_unimplemented_status(unary_only_server):  # noqa: F811
    # A write that meets the stream's end makes grpc.aio report INTERNAL instead of the server's
    # UNIMPLEMENTED (a few first calls in a hundred): the pipeline asks again with an empty stream.
    servicer, port = unary_only_server
    persisters = 150

    async def first_save(index: int):
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", port) as persister:
            await persister.save("p", f"app-{index}", 0, "step", State({"index": index}), "completed")
            return persister._pipeline.supported

    async def scenario():
        return [await first_save(index) for index in range(persisters)]

    assert asyncio.run(scenario()) == [False] * persisters
    assert servicer.calls["Save"] == persisters


def test_calls_queued_together_go_in_one_message_and_each_gets_its_own_answer(server, partition):
    tasks = 16

    async def work(persister, task: int):  # odd tasks load, even ones save, task 0 a save already made
        app_id = f"app-{task}"
        if task % 2:
            return (await persister.load(partition, app_id))["state"]["task"]
        try:
            state = State({"task": -task})
            await persister.save(partition, app_id, 0 if task == 0 else 1, "step", state, "completed")
            return "saved"
        except AlreadyExistsError:
            return "already exists"

    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as setup:
            for task in range(tasks):
                await setup.save(partition, f"app-{task}", 0, "step", State({"task": task}), "completed")
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            streams = record_pipelined(persister._pipeline)
            hold_first_message(persister._pipeline, tasks)
            outcomes = await asyncio.gather(*(work(persister, task) for task in range(tasks)))
            saved = [(await persister.load(partition, f"app-{task}"))["state"] for task in range(2, tasks, 2)]
            return streams, outcomes, [state["task"] for state in saved]

    streams, outcomes, saved = asyncio.run(scenario())
    assert streams[0][0] == tasks  # one message carried every call
    assert outcomes == [task if task % 2 else "saved" if task else "already exists" for task in range(tasks)]
    assert saved == [-task for task in range(2, tasks, 2)]


def test_a_stream_failing_mid_message_fails_exactly_the_calls_it_left_unanswered(
    failing_mid_message_server,  # noqa: F811
):
    servicer, port = failing_mid_message_server
    tasks = 8

    async def outcome(pipeline, app_id: str):
        try:
            return type(await pipeline.call(save_request(app_id))).__name__
        except PipelineCallError as error:
            return error.code(), error.details()

    async def scenario():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            pipeline = _async_pipeline.AsyncCallPipeline(
                StatePersisterStub(channel).BatchedPipeline, deadline_seconds=30
            )
            streams = record_pipelined(pipeline)
            hold_first_message(pipeline, tasks)
            outcomes = await asyncio.gather(*(outcome(pipeline, f"app-{task}") for task in range(tasks)))
            await pipeline.close()
            return streams, outcomes

    streams, outcomes = asyncio.run(scenario())
    assert streams == [[tasks]]
    assert len(servicer.answered) == tasks // 2
    unanswered = (grpc.StatusCode.UNAVAILABLE, "gone mid-message")
    assert outcomes == [
        "SaveResponse" if f"app-{task}" in servicer.answered else unanswered for task in range(tasks)
    ]
