"""Real Burr applications (ApplicationBuilder) persisting through the gRPC server."""

from __future__ import annotations

import threading
from typing import Any, Dict, Generator

import pytest
from burr.core import Action, ApplicationBuilder, ApplicationContext, State, action, expr
from burr.core.parallelism import MapStates
from burr.core.persistence import SQLitePersister

from burr_grpc_persister import GrpcStatePersister
from helpers import new_app_id, rows

TARGET = 3


class Flaky:
    """Makes an action raise the first ``failures`` times it runs, like a flaky API call."""

    def __init__(self, failures: int = 1):
        self.failures_left = failures

    def maybe_fail(self):
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("the flaky service is down")


@action(reads=["count"], writes=["count", "history"])
def count_up(state: State) -> State:
    return state.update(count=state["count"] + 1).append(history=state["count"] + 1)


@action(reads=["count"], writes=["count"])
def call_service(state: State, gate: Flaky) -> State:
    gate.maybe_fail()
    return state.update(count=state["count"] * 10)


@action(reads=["count"], writes=["done"])
def finish(state: State) -> State:
    return state.update(done=True)


def counter_app(persister, app_id, partition_key, gate: Flaky, **initialize_from):
    """count_up until TARGET, then call_service (failing as ``gate`` says), then finish."""
    return (
        ApplicationBuilder()
        .with_actions(count_up=count_up, call_service=call_service.bind(gate=gate), finish=finish)
        .with_transitions(
            ("count_up", "count_up", expr(f"count < {TARGET}")),
            ("count_up", "call_service"),
            ("call_service", "finish"),
        )
        .initialize_from(
            persister,
            resume_at_next_action=True,
            default_state={"count": 0, "history": []},
            default_entrypoint="count_up",
            **initialize_from,
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=app_id, partition_key=partition_key)
        .build()
    )


def run_with_one_failure(persister, app_id, partition_key) -> dict:
    """Runs until the flaky action fails, then resumes from the persister and runs to the end."""
    gate = Flaky(failures=1)
    with pytest.raises(ConnectionError):
        counter_app(persister, app_id, partition_key, gate).run(halt_after=["finish"])
    _, _, final_state = counter_app(persister, app_id, partition_key, gate).run(halt_after=["finish"])
    return final_state.get_all()


EXPECTED_ROWS = [
    (0, "count_up", "completed"),
    (1, "count_up", "completed"),
    (2, "count_up", "completed"),
    (3, "call_service", "failed"),
    (4, "call_service", "completed"),
    (5, "finish", "completed"),
]


def test_an_action_that_raises_is_saved_failed_and_retried_on_resume(persister, partition):
    app_id = new_app_id()

    final = run_with_one_failure(persister, app_id, partition)

    assert (final["count"], final["history"], final["done"]) == (30, [1, 2, 3], True)
    assert rows(persister, partition, app_id) == EXPECTED_ROWS
    failed = persister.load(partition, app_id, 3)
    assert failed["state"]["count"] == 3  # the state from before the failed action


def test_same_results_as_burrs_own_sqlite_persister(persister, partition, tmp_path):
    """The same application, changing only the persister line, gives the same state and rows."""
    app_id = new_app_id()
    with SQLitePersister(str(tmp_path / "burr.db")) as sqlite_persister:
        sqlite_persister.initialize()
        with_sqlite = run_with_one_failure(sqlite_persister, app_id, partition)
        sqlite_rows = rows(sqlite_persister, partition, app_id)

    with_grpc = run_with_one_failure(persister, app_id, partition)

    assert with_grpc == with_sqlite
    assert rows(persister, partition, app_id) == sqlite_rows == EXPECTED_ROWS


def test_resume_with_a_new_persister_after_the_server_restarts(own_server, partition):
    own_server.start()
    app_id = new_app_id()
    first = GrpcStatePersister.from_values("127.0.0.1", own_server.port)
    gate = Flaky(failures=1)
    app = counter_app(first, app_id, partition, gate)
    app.step()
    app.step()

    own_server.restart()  # same database, same port

    with GrpcStatePersister.from_values("127.0.0.1", own_server.port) as second:
        resumed = counter_app(second, app_id, partition, gate)
        assert resumed.state["count"] == 2
        with pytest.raises(ConnectionError):
            resumed.run(halt_after=["finish"])
        _, _, final_state = counter_app(second, app_id, partition, gate).run(halt_after=["finish"])

    assert (final_state["count"], final_state["history"]) == (30, [1, 2, 3])
    # The first instance kept its channel across the restart and reconnects by itself.
    assert rows(first, partition, app_id) == EXPECTED_ROWS
    first.cleanup()


def test_fork_from_another_app_at_a_step(persister, partition):
    source, fork = new_app_id("source"), new_app_id("fork")
    run_with_one_failure(persister, source, partition)

    forked = counter_app(
        persister,
        fork,
        partition,
        Flaky(failures=0),
        fork_from_app_id=source,
        fork_from_sequence_id=1,
        fork_from_partition_key=partition,
    )
    assert (forked.state["count"], forked.state["history"]) == (2, [1, 2])
    _, _, final_state = forked.run(halt_after=["finish"])

    assert (final_state["count"], final_state["history"]) == (30, [1, 2, 3])
    assert rows(persister, partition, fork) == [
        (2, "count_up", "completed"),
        (3, "call_service", "completed"),
        (4, "finish", "completed"),
    ]
    assert rows(persister, partition, source) == EXPECTED_ROWS
    assert persister.list_app_ids(partition) == [fork, source]


def test_several_apps_in_one_partition_are_listed_most_recent_first(persister, partition):
    app_ids = [new_app_id(f"app{i}") for i in range(3)]
    for app_id in app_ids:
        counter_app(persister, app_id, partition, Flaky(failures=0)).step()
    counter_app(persister, app_ids[0], partition, Flaky(failures=0)).step()  # app0 is written last now

    assert persister.list_app_ids(partition) == [app_ids[0], app_ids[2], app_ids[1]]
    assert persister.load(partition, None)["app_id"] == app_ids[0]


class RecordingPersister(GrpcStatePersister):
    """Notes which instance saved from which thread (copies inherit the class)."""

    saves: list[tuple[GrpcStatePersister, int]] = []

    def save(self, *args, **kwargs):
        RecordingPersister.saves.append((self, threading.get_ident()))
        return super().save(*args, **kwargs)


@action(reads=["number"], writes=["square"])
def square(state: State) -> State:
    return state.update(square=state["number"] ** 2)


class SquareEach(MapStates):
    def action(self, state: State, inputs: Dict[str, Any]) -> Action:
        return square

    def states(
        self, state: State, context: ApplicationContext, inputs: Dict[str, Any]
    ) -> Generator[State, None, None]:
        for number in state["numbers"]:
            yield state.update(number=number)

    def reduce(self, state: State, states: Generator[State, None, None]) -> State:
        return state.update(squares=sorted(sub_state["square"] for sub_state in states))

    @property
    def reads(self) -> list[str]:
        return ["numbers"]

    @property
    def writes(self) -> list[str]:
        return ["squares"]


def test_parallel_sub_applications_save_concurrently_through_copies(server, partition):
    numbers = list(range(12))
    parent_id = new_app_id("parent")
    RecordingPersister.saves = []
    persister = RecordingPersister.from_values("127.0.0.1", server.port)
    app = (
        ApplicationBuilder()
        .with_actions(square_each=SquareEach(), finish=finish)
        .with_transitions(("square_each", "finish"))
        .initialize_from(
            persister,
            resume_at_next_action=True,
            default_state={"numbers": numbers},
            default_entrypoint="square_each",
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=parent_id, partition_key=partition)
        .build()
    )

    _, _, final_state = app.run(halt_after=["finish"])

    assert final_state["squares"] == [n * n for n in numbers]
    listed = persister.list_app_ids(partition)
    children = [app_id for app_id in listed if app_id != parent_id]
    assert len(listed) == len(set(listed)) == len(numbers) + 1 and parent_id in listed
    for child in children:
        assert rows(persister, partition, child) == [(0, "square", "completed")]
        assert persister.load(partition, child)["state"]["square"] in final_state["squares"]
    assert rows(persister, partition, parent_id) == [
        (0, "square_each", "completed"),
        (1, "finish", "completed"),
    ]
    child_saves = [
        (instance, thread) for instance, thread in RecordingPersister.saves if instance is not persister
    ]
    assert len({id(instance) for instance, _ in child_saves}) == len(numbers)  # one copy per sub-application
    assert len({thread for _, thread in child_saves}) > 1  # from several threads at once
    persister.cleanup()
