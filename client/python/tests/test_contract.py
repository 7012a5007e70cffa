"""The persister contract (shared/burr-persistence.md), driven from Python against the real server."""

from __future__ import annotations

import datetime

import pytest

from burr_grpc_persister import (
    AlreadyExistsError,
    GrpcStatePersister,
    InvalidArgumentError,
    NotInitializedError,
    StateTooLargeError,
)
from conftest import MAX_MESSAGE_BYTES
from helpers import new_app_id, state


def test_initialize_is_idempotent_and_reported(persister):
    persister.initialize()
    persister.initialize()
    assert persister.is_initialized() is True


def test_load_returns_burr_persisted_state_data(persister, partition):
    app_id = new_app_id()
    before = datetime.datetime.now(datetime.timezone.utc)
    persister.save(partition, app_id, 0, "start", state(count=1, name="x"), "completed")

    loaded = persister.load(partition, app_id)

    assert set(loaded) == {
        "partition_key",
        "app_id",
        "sequence_id",
        "position",
        "state",
        "created_at",
        "status",
    }
    assert (loaded["partition_key"], loaded["app_id"], loaded["sequence_id"]) == (partition, app_id, 0)
    assert (loaded["position"], loaded["status"]) == ("start", "completed")
    assert loaded["state"].get_all() == {"count": 1, "name": "x"}
    created_at = datetime.datetime.fromisoformat(loaded["created_at"])
    assert created_at.utcoffset() == datetime.timedelta(0)
    assert before - datetime.timedelta(seconds=5) <= created_at <= before + datetime.timedelta(seconds=60)


@pytest.mark.parametrize("saved_as, loaded_as", [(None, ""), ("", None), (None, None)])
def test_absent_partition_is_the_empty_partition(persister, saved_as, loaded_as):
    app_id = new_app_id()
    persister.save(saved_as, app_id, 0, "start", state(n=1), "completed")

    assert persister.load(loaded_as, app_id)["state"]["n"] == 1
    assert persister.load(loaded_as, app_id)["partition_key"] == ""
    assert persister.list_app_ids(loaded_as)[0] == app_id
    assert persister.load(loaded_as, None)["app_id"] == app_id


def test_duplicate_save_raises_and_keeps_the_first(persister, partition):
    app_id = new_app_id()
    persister.save(partition, app_id, 3, "step", state(version="first"), "completed")

    with pytest.raises(AlreadyExistsError) as raised:
        persister.save(partition, app_id, 3, "step", state(version="second"), "failed")

    assert isinstance(raised.value, ValueError)
    assert "already" in str(raised.value) and app_id in str(raised.value)
    assert raised.value.code.name == "ALREADY_EXISTS"
    loaded = persister.load(partition, app_id, 3)
    assert (loaded["state"]["version"], loaded["status"]) == ("first", "completed")


def test_same_step_with_another_position_is_accepted(persister, partition):
    app_id = new_app_id()
    persister.save(partition, app_id, 1, "first_position", state(v=1), "completed")
    persister.save(partition, app_id, 1, "second_position", state(v=2), "completed")

    loaded = persister.load(partition, app_id, 1)
    assert (loaded["position"], loaded["state"]["v"]) == ("second_position", 2)


def test_latest_is_the_highest_sequence_id_whatever_its_status(persister, partition):
    app_id = new_app_id()
    persister.save(partition, app_id, 5, "boom", state(at=5), "failed")
    persister.save(partition, app_id, 3, "earlier", state(at=3), "completed")  # written last, lower step

    latest = persister.load(partition, app_id)
    assert (latest["sequence_id"], latest["position"], latest["status"]) == (5, "boom", "failed")


def test_sequence_ids_may_have_gaps(persister, partition):
    app_id = new_app_id()
    for sequence_id in (0, 2, 7):
        persister.save(partition, app_id, sequence_id, "step", state(at=sequence_id), "completed")

    assert persister.load(partition, app_id, 1) is None
    assert persister.load(partition, app_id, 2)["state"]["at"] == 2
    assert persister.load(partition, app_id)["sequence_id"] == 7


def test_load_without_app_id_is_the_most_recently_written_in_the_partition(persister, partition):
    first, second = new_app_id("first"), new_app_id("second")
    persister.save(partition, first, 10, "step", state(), "completed")
    persister.save(partition, second, 1, "step", state(), "completed")

    latest = persister.load(partition, None)
    assert (latest["app_id"], latest["sequence_id"]) == (second, 1)


def test_nothing_found_is_none(persister, partition):
    app_id = new_app_id()
    persister.save(partition, app_id, 0, "step", state(), "completed")

    assert persister.load(partition, new_app_id("unknown")) is None
    assert persister.load(partition, app_id, 99) is None
    assert persister.load(new_app_id("unknown-partition"), app_id) is None
    assert persister.load(new_app_id("unknown-partition"), None) is None


def test_list_app_ids_once_each_most_recently_written_first(persister, partition):
    a, b, c = new_app_id("a"), new_app_id("b"), new_app_id("c")
    for app_id, sequence_id in ((a, 0), (b, 0), (a, 1), (c, 0), (b, 1), (b, 2)):
        persister.save(partition, app_id, sequence_id, "step", state(), "completed")

    assert persister.list_app_ids(partition) == [b, c, a]
    assert persister.list_app_ids(new_app_id("unknown-partition")) == []


def test_loading_an_unknown_app_does_not_list_it(persister, partition):
    assert persister.load(partition, new_app_id()) is None
    assert persister.list_app_ids(partition) == []


def test_non_ascii_ids_round_trip(persister):
    partition, app_id, position = "partition-é-日本", new_app_id("app-🎉"), "étape"
    persister.save(partition, app_id, 0, position, state(), "completed")

    loaded = persister.load(partition, app_id)
    assert (loaded["partition_key"], loaded["app_id"], loaded["position"]) == (partition, app_id, position)
    assert app_id in persister.list_app_ids(partition)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"app_id": ""}, "app_id must not be empty"),
        ({"position": ""}, "position must not be empty"),
        ({"sequence_id": -1}, "sequence_id must be >= 0"),
        ({"app_id": "a" * 1025}, "app_id is 1025 bytes long"),
        ({"position": "p" * 1025}, "position is 1025 bytes long"),
        ({"partition_key": "k" * 1025}, "partition_key is 1025 bytes long"),
        ({"sequence_id": 2**63}, "sequence_id cannot be sent"),
        ({"sequence_id": "1"}, "sequence_id cannot be sent"),
        ({"app_id": "lone \ud800 surrogate"}, "app_id cannot be sent"),
        ({"status": ""}, "status must not be empty"),
        ({"status": 3}, "status must be a string"),
        ({"status": "s" * 1025}, "status is 1025 bytes long"),
    ],
)
def test_bad_save_arguments_are_refused_clearly(persister, partition, change, reason):
    arguments = dict(
        partition_key=partition, app_id=new_app_id(), sequence_id=0, position="step", status="completed"
    )
    arguments.update(change)

    with pytest.raises(InvalidArgumentError, match=reason) as raised:
        persister.save(state=state(), **arguments)

    assert isinstance(raised.value, ValueError)
    assert raised.value.code.name == "INVALID_ARGUMENT"
    assert persister.list_app_ids(partition) == []


def test_a_step_without_an_app_is_refused(persister, partition):
    with pytest.raises(InvalidArgumentError, match="sequence_id"):
        persister.load(partition, None, 3)


def test_a_state_over_the_server_limit_is_refused(persister, partition):
    app_id = new_app_id()
    with pytest.raises(StateTooLargeError) as raised:
        persister.save(partition, app_id, 0, "step", state(blob="x" * MAX_MESSAGE_BYTES), "completed")

    assert raised.value.code.name == "RESOURCE_EXHAUSTED"
    assert persister.load(partition, app_id) is None


def test_an_uninitialized_store_says_so_until_initialized(own_server):
    own_server.init = False
    own_server.start()
    with GrpcStatePersister.from_values("127.0.0.1", own_server.port) as persister:
        assert persister.is_initialized() is False
        with pytest.raises(NotInitializedError) as raised:
            persister.save("", new_app_id(), 0, "step", state(), "completed")
        assert isinstance(raised.value, RuntimeError) and "initialize" in str(raised.value).lower()

        persister.initialize()

        assert persister.is_initialized() is True
        persister.save("", "app", 0, "step", state(), "completed")
        assert persister.list_app_ids(None) == ["app"]
