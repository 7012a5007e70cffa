"""AsyncGrpcStatePersister: the contract and a real async Burr application (abuild, astep, arun)."""

from __future__ import annotations

import asyncio
import json
import pickle
from typing import Any, AsyncGenerator, Dict

import pytest
from burr.core import Action, ApplicationBuilder, ApplicationContext, State, action, expr
from burr.core.parallelism import MapStates

from burr_grpc_persister import AlreadyExistsError, AsyncGrpcStatePersister, UnavailableError
from burr_grpc_persister._gen import state_persister_pb2 as pb
from helpers import arows, new_app_id


def run(coroutine):
    return asyncio.run(coroutine)


def test_contract_basics(server, raw_stub, partition):
    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            await persister.initialize()
            assert await persister.is_initialized() is True
            first, second = new_app_id("first"), new_app_id("second")
            original = State({"big": 2**64, "ratio": 1.0, "nan": float("nan"), "text": "é\ud800"})
            await persister.save(partition, first, 0, "step", original, "completed")
            await persister.save(partition, first, 4, "step", State({"n": 4}), "failed")
            await persister.save(partition, second, 0, "step", State({"n": 0}), "completed")

            with pytest.raises(AlreadyExistsError):
                await persister.save(partition, first, 0, "step", State({"n": -1}), "completed")

            stored = raw_stub.Load(
                pb.LoadRequest(partition_key=partition, app_id=first, sequence_id=0), timeout=10
            )
            assert stored.persisted_state.state == json.dumps(original.serialize()).encode()
            loaded = (await persister.load(partition, first, 0))["state"]
            assert (loaded["big"], type(loaded["ratio"]), loaded["text"]) == (2**64, float, "é\ud800")
            latest = await persister.load(partition, first)
            assert (latest["sequence_id"], latest["status"]) == (4, "failed")
            assert (await persister.load(partition, None))["app_id"] == second
            assert await persister.load(partition, new_app_id()) is None
            assert await persister.list_app_ids(partition) == [second, first]
            assert await persister.list_app_ids(new_app_id()) == []

    run(scenario())


def test_works_across_event_loops(server, partition):
    """asyncio.run twice with one instance: each loop gets its own channel."""
    persister = AsyncGrpcStatePersister.from_values("127.0.0.1", server.port)
    app_id = new_app_id()
    run(persister.save(partition, app_id, 0, "step", State({"n": 1}), "completed"))
    assert run(persister.load(partition, app_id))["state"]["n"] == 1
    run(persister.cleanup())


def test_unreachable_server_names_the_address(closed_port):
    persister = AsyncGrpcStatePersister.from_values("127.0.0.1", closed_port, retry_attempts=2)
    with pytest.raises(UnavailableError, match=f"127.0.0.1:{closed_port}.*2 attempts"):
        run(persister.load("", "app"))


def test_copies_and_unpickled_instances_have_their_own_channel(server, partition):
    async def scenario():
        original = AsyncGrpcStatePersister.from_values(
            "127.0.0.1", server.port, serde_kwargs={"example_option": 1}
        )
        copies = [original.copy(), pickle.loads(pickle.dumps(original))]
        for index, persister in enumerate([original, *copies]):
            await persister.save(partition, f"app-{index}", 0, "step", State({"i": index}), "completed")
        assert len({id(persister._channel) for persister in [original, *copies]}) == 3
        assert all(persister.serde_kwargs == {"example_option": 1} for persister in copies)
        for persister in [original, *copies]:
            await persister.cleanup()

    run(scenario())


@action(reads=["count"], writes=["count"])
async def count_up(state: State) -> State:
    await asyncio.sleep(0)
    return state.update(count=state["count"] + 1)


@action(reads=["count"], writes=["done"])
async def finish(state: State) -> State:
    return state.update(done=True)


async def async_counter(persister, app_id, partition_key):
    return await (
        ApplicationBuilder()
        .with_actions(count_up=count_up, finish=finish)
        .with_transitions(("count_up", "count_up", expr("count < 4")), ("count_up", "finish"))
        .initialize_from(
            persister, resume_at_next_action=True, default_state={"count": 0}, default_entrypoint="count_up"
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=app_id, partition_key=partition_key)
        .abuild()
    )


def test_async_application_steps_runs_and_resumes(server, partition):
    app_id = new_app_id()

    async def first_half():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            app = await async_counter(persister, app_id, partition)
            await app.astep()
            await app.astep()

    async def second_half():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            app = await async_counter(persister, app_id, partition)
            assert app.state["count"] == 2
            _, _, final_state = await app.arun(halt_after=["finish"])
            return final_state, await arows(persister, partition, app_id)

    run(first_half())
    final_state, saved = run(second_half())

    assert (final_state["count"], final_state["done"]) == (4, True)
    assert saved == [
        (0, "count_up", "completed"),
        (1, "count_up", "completed"),
        (2, "count_up", "completed"),
        (3, "count_up", "completed"),
        (4, "finish", "completed"),
    ]


@action(reads=["number"], writes=["double"])
async def double(state: State) -> State:
    await asyncio.sleep(0.01)
    return state.update(double=state["number"] * 2)


class DoubleEach(MapStates):
    def action(self, state: State, inputs: Dict[str, Any]) -> Action:
        return double

    async def states(
        self, state: State, context: ApplicationContext, inputs: Dict[str, Any]
    ) -> AsyncGenerator[State, None]:
        for number in state["numbers"]:
            yield state.update(number=number)

    async def reduce(self, state: State, states: AsyncGenerator[State, None]) -> State:
        return state.update(doubles=sorted([sub_state["double"] async for sub_state in states]))

    def is_async(self) -> bool:
        return True

    @property
    def reads(self) -> list[str]:
        return ["numbers"]

    @property
    def writes(self) -> list[str]:
        return ["doubles"]


def test_async_parallel_sub_applications_save_through_copies(server, partition):
    numbers = list(range(8))
    parent_id = new_app_id("parent")

    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            app = await (
                ApplicationBuilder()
                .with_actions(double_each=DoubleEach(), finish=finish)
                .with_transitions(("double_each", "finish"))
                .initialize_from(
                    persister,
                    resume_at_next_action=True,
                    default_state={"numbers": numbers},
                    default_entrypoint="double_each",
                )
                .with_state_persister(persister)
                .with_identifiers(app_id=parent_id, partition_key=partition)
                .abuild()
            )
            _, _, final_state = await app.arun(halt_after=["finish"])
            return final_state, await persister.list_app_ids(partition)

    final_state, listed = run(scenario())

    assert final_state["doubles"] == [n * 2 for n in numbers]
    assert len(set(listed)) == len(numbers) + 1 and parent_id in listed
