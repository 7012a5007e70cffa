"""History and deletion: list_steps, delete_app, delete_partition and prune on both persisters,
against the real server, and a Burr application forked from a step found with list_steps."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from concurrent import futures
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from burr.core import ApplicationBuilder, State, action
from burr.core.persistence import PersistedStateData

from burr_grpc_persister import (
    ALL_PARTITIONS,
    AsyncGrpcStatePersister,
    DeletedPartition,
    GrpcStatePersister,
    InvalidArgumentError,
    PermissionDeniedError,
    UnavailableError,
)
from burr_grpc_persister._gen import state_persister_pb2 as pb
from burr_grpc_persister._gen.state_persister_pb2_grpc import (
    StatePersisterServicer,
    add_StatePersisterServicer_to_server,
)
from helpers import new_app_id
from server_process import ServerProcess


def save_steps(persister, partition_key, app_id, steps, status="completed"):
    """Saves (sequence_id, position) pairs in the order given, each with state {"n": sequence_id}."""
    for sequence_id, position in steps:
        state = State({"n": sequence_id, "at": position})
        persister.save(partition_key, app_id, sequence_id, position, state, status)


def save_many(persister, partition_key, app_id, how_many):
    """Steps 0 to how_many - 1, saved from 8 threads (the pipeline carries them together)."""
    with futures.ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: persister.save(partition_key, app_id, n, "step", State({"n": n}), "completed"),
                range(how_many),
            )
        )


def keys(steps) -> list[tuple[int, str]]:
    return [(step["sequence_id"], step["position"]) for step in steps]


def sequence_ids(persister, partition_key, app_id) -> list[int]:
    return [step["sequence_id"] for step in persister.list_steps(partition_key, app_id)]


def instant(step) -> datetime:
    return datetime.fromisoformat(step["created_at"])


# --- list_steps ---------------------------------------------------------------------------------


def test_steps_come_newest_first_and_ties_in_reverse_write_order(persister, partition):
    app_id = new_app_id()
    # Written out of order; two positions share sequence_id 1, the later-written one named "a".
    save_steps(persister, partition, app_id, [(0, "first"), (2, "third"), (1, "z"), (1, "a"), (5, "last")])

    steps = list(persister.list_steps(partition, app_id))

    assert keys(steps) == [(5, "last"), (2, "third"), (1, "a"), (1, "z"), (0, "first")]
    newest = steps[0]
    assert set(newest) == set(PersistedStateData.__annotations__)
    assert (newest["partition_key"], newest["app_id"], newest["status"], newest["state"]) == (
        partition,
        app_id,
        "completed",
        None,
    )
    assert newest["created_at"] == persister.load(partition, app_id)["created_at"]
    assert instant(newest).tzinfo is not None


def test_include_state_gives_each_step_what_load_gives(persister, partition):
    app_id = new_app_id()
    save_steps(persister, partition, app_id, [(0, "a"), (1, "b")])
    persister.save(partition, app_id, 2, "c", State({"n": 2, "big": 2**70, "text": "é"}), "failed")

    steps = list(persister.list_steps(partition, app_id, include_state=True))

    assert [step["state"].get_all() for step in steps] == [
        {"n": 2, "big": 2**70, "text": "é"},
        {"n": 1, "at": "b"},
        {"n": 0, "at": "a"},
    ]
    assert [step["status"] for step in steps] == ["failed", "completed", "completed"]
    for step in steps:
        loaded = persister.load(partition, app_id, step["sequence_id"])
        assert {**step, "state": step["state"].get_all()} == {**loaded, "state": loaded["state"].get_all()}


def test_paging_back_with_before_sequence_id_and_limit(persister, partition):
    app_id = new_app_id()
    save_steps(persister, partition, app_id, [(sequence_id, "step") for sequence_id in range(10)])

    assert sequence_ids(persister, partition, app_id) == list(range(9, -1, -1))
    assert keys(persister.list_steps(partition, app_id, limit=3)) == [(9, "step"), (8, "step"), (7, "step")]
    assert keys(persister.list_steps(partition, app_id, before_sequence_id=4)) == [
        (3, "step"),
        (2, "step"),
        (1, "step"),
        (0, "step"),
    ]
    page = persister.list_steps(partition, app_id, before_sequence_id=7, limit=2)
    assert [step["sequence_id"] for step in page] == [6, 5]
    assert list(persister.list_steps(partition, app_id, before_sequence_id=0)) == []
    assert len(list(persister.list_steps(partition, app_id, limit=0))) == 10  # 0 is "all", as None

    pages, before = [], None
    while True:
        page = [step["sequence_id"] for step in persister.list_steps(partition, app_id, before, limit=4)]
        if not page:
            break
        pages.append(page)
        before = page[-1]
    assert pages == [[9, 8, 7, 6], [5, 4, 3, 2], [1, 0]]


def test_a_long_history_streams_in_several_chunks(persister, raw_stub, partition):
    app_id = new_app_id()
    save_many(persister, partition, app_id, 2500)
    chunks = list(raw_stub.ListSteps(pb.ListStepsRequest(partition_key=partition, app_id=app_id), timeout=30))
    assert len(chunks) > 1

    steps = persister.list_steps(partition, app_id, include_state=True)
    listed = [(step["sequence_id"], step["state"]["n"]) for step in steps]

    assert listed == [(n, n) for n in range(2499, -1, -1)]
    assert len(list(persister.list_steps(partition, app_id, before_sequence_id=2000, limit=1500))) == 1500


def test_unknown_app_and_partition_give_nothing(persister, partition):
    save_steps(persister, partition, "known", [(0, "a")])
    assert list(persister.list_steps(partition, new_app_id())) == []
    assert list(persister.list_steps(new_app_id("partition"), "known")) == []


def test_none_and_empty_partition_are_the_default_one(server):
    with GrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
        app_id = new_app_id()
        save_steps(persister, None, app_id, [(0, "a"), (1, "b")])
        assert sequence_ids(persister, "", app_id) == sequence_ids(persister, None, app_id) == [1, 0]
        assert persister.delete_app("", app_id) == 2


def test_stopping_early_cancels_the_stream_and_the_persister_goes_on(persister, partition):
    app_id = new_app_id()
    save_many(persister, partition, app_id, 1500)

    steps = persister.list_steps(partition, app_id)
    assert next(steps)["sequence_id"] == 1499
    steps.close()

    with contextlib.closing(persister.list_steps(partition, app_id, include_state=True)) as steps:
        for step in steps:
            if step["sequence_id"] == 1000:
                break
    assert persister.load(partition, app_id)["sequence_id"] == 1499
    assert len(list(persister.list_steps(partition, app_id))) == 1500


# --- delete_app ----------------------------------------------------------------------------------


def test_delete_app_removes_it_everywhere_and_it_can_be_saved_again(persister, partition):
    doomed, kept = new_app_id("doomed"), new_app_id("kept")
    save_steps(persister, partition, kept, [(0, "a")])
    save_steps(persister, partition, doomed, [(0, "a"), (1, "b"), (1, "c")])
    assert persister.list_app_ids(partition) == [doomed, kept]

    assert persister.delete_app(partition, doomed) == 3

    assert persister.load(partition, doomed) is None
    assert persister.load(partition, doomed, 0) is None
    assert persister.load(partition, None)["app_id"] == kept
    assert persister.list_app_ids(partition) == [kept]
    assert list(persister.list_steps(partition, doomed)) == []
    assert sequence_ids(persister, partition, kept) == [0]

    # The same four-tuples can be saved again: a new app under the old id.
    persister.save(partition, doomed, 0, "a", State({"again": True}), "completed")
    assert persister.load(partition, doomed)["state"]["again"] is True
    assert persister.list_app_ids(partition) == [doomed, kept]
    assert sequence_ids(persister, partition, doomed) == [0]


def test_delete_app_of_an_unknown_app_deletes_nothing(persister, partition):
    save_steps(persister, partition, "other", [(0, "a")])
    assert persister.delete_app(partition, new_app_id()) == 0
    assert persister.delete_app(new_app_id("partition"), "other") == 0
    assert persister.list_app_ids(partition) == ["other"]


# --- delete_partition ----------------------------------------------------------------------------


def test_delete_partition_deletes_every_app_of_it_and_no_other(persister, partition):
    neighbour = f"{partition}-neighbour"
    save_steps(persister, partition, "a", [(0, "x"), (1, "y"), (2, "z")])
    save_steps(persister, partition, "b", [(0, "x"), (1, "y")])
    save_steps(persister, neighbour, "a", [(0, "x")])

    deleted = persister.delete_partition(partition)

    assert deleted == DeletedPartition(steps_deleted=5, apps_deleted=2)
    steps, apps = deleted
    assert (steps, apps) == (deleted.steps_deleted, deleted.apps_deleted) == (5, 2)
    assert persister.list_app_ids(partition) == []
    assert persister.load(partition, None) is None
    assert persister.list_app_ids(neighbour) == ["a"]
    assert persister.delete_partition(partition) == (0, 0)
    assert persister.delete_partition(neighbour) == (1, 1)


# --- prune ---------------------------------------------------------------------------------------


def test_prune_keep_last_of_one_app_or_of_every_app_of_a_partition(persister, partition):
    save_steps(persister, partition, "a", [(sequence_id, "s") for sequence_id in range(5)])
    save_steps(persister, partition, "b", [(0, "s"), (1, "s"), (1, "t"), (2, "s")])
    save_steps(persister, partition, "c", [(0, "s")])

    assert persister.prune(partition, "a", keep_last=2) == 3
    assert sequence_ids(persister, partition, "a") == [4, 3]
    assert sequence_ids(persister, partition, "b") == [2, 1, 1, 0]

    assert persister.prune(partition, keep_last=2) == 2  # b's two oldest; a and c have no more than 2
    assert keys(persister.list_steps(partition, "b")) == [(2, "s"), (1, "t")]
    assert persister.prune(partition, keep_last=1) == 2
    assert [sequence_ids(persister, partition, app) for app in "abc"] == [[4], [2], [0]]
    assert persister.prune(partition, keep_last=1) == 0
    assert persister.list_app_ids(partition) == ["c", "b", "a"]


def test_prune_older_than_never_deletes_an_apps_highest_step(persister, partition):
    save_steps(persister, partition, "a", [(0, "s"), (1, "s")])
    time.sleep(0.05)
    save_steps(persister, partition, "a", [(2, "s"), (3, "s")])
    cutoff = instant(next(step for step in persister.list_steps(partition, "a") if step["sequence_id"] == 2))
    save_steps(persister, partition, "lone", [(7, "s")])

    assert persister.prune(partition, "a", older_than=cutoff) == 2  # created strictly before the cutoff
    assert sequence_ids(persister, partition, "a") == [3, 2]

    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert persister.prune(partition, older_than=future) == 1  # a's 2; a's 3 and lone's 7 are the highest
    assert sequence_ids(persister, partition, "a") == [3]
    assert sequence_ids(persister, partition, "lone") == [7]
    assert persister.load(partition, "a")["state"]["n"] == 3
    assert persister.list_app_ids(partition) == ["lone", "a"]


def test_prune_older_than_takes_naive_datetimes_as_utc_and_any_time_zone(persister, partition):
    save_steps(persister, partition, "a", [(0, "s"), (1, "s")])
    time.sleep(0.05)
    save_steps(persister, partition, "a", [(2, "s"), (3, "s")])
    steps = {step["sequence_id"]: instant(step) for step in persister.list_steps(partition, "a")}

    naive_utc = steps[1].astimezone(timezone.utc).replace(tzinfo=None)
    assert persister.prune(partition, "a", older_than=naive_utc) == 1  # step 0 only
    elsewhere = steps[2].astimezone(timezone(timedelta(hours=-7, minutes=-30)))
    assert persister.prune(partition, "a", older_than=elsewhere) == 1  # step 1
    assert sequence_ids(persister, partition, "a") == [3, 2]


def test_prune_with_both_rules_deletes_only_steps_meeting_both(persister, partition):
    save_steps(persister, partition, "a", [(0, "s"), (1, "s"), (2, "s")])
    time.sleep(0.05)
    save_steps(persister, partition, "a", [(3, "s"), (4, "s"), (5, "s")])
    cutoff = instant(next(step for step in persister.list_steps(partition, "a") if step["sequence_id"] == 3))

    # Beyond the newest 5: step 0 only (and it is old).
    assert persister.prune(partition, "a", keep_last=5, older_than=cutoff) == 1
    # Beyond the newest 2: 1, 2 and 3; older than the cutoff: 1 and 2.
    assert persister.prune(partition, "a", keep_last=2, older_than=cutoff) == 2
    assert sequence_ids(persister, partition, "a") == [5, 4, 3]


def test_prune_every_partition_or_only_the_default_one(own_server):
    own_server.start()
    with GrpcStatePersister.from_values("127.0.0.1", own_server.port) as persister:
        three = [(0, "s"), (1, "s"), (2, "s")]
        save_steps(persister, "p1", "a", three)
        save_steps(persister, "", "b", three)
        save_steps(persister, "p2", "c", three)
        save_steps(persister, "p2", "d", [(0, "s")])

        assert persister.prune(None, keep_last=2) == 1  # None is the default partition: b only
        assert persister.prune("", keep_last=2) == 0
        assert sequence_ids(persister, "", "b") == [2, 1]
        assert persister.prune(keep_last=1) == 2 + 1 + 2  # every partition
        assert persister.prune(ALL_PARTITIONS, keep_last=1) == 0
        apps = [("p1", "a"), ("", "b"), ("p2", "c"), ("p2", "d")]
        assert [sequence_ids(persister, p, app) for p, app in apps] == [[2], [2], [2], [0]]

        save_steps(persister, "p1", "a", [(3, "s"), (4, "s")])
        future = datetime.now(timezone.utc) + timedelta(hours=1)
        assert persister.prune(older_than=future) == 2
        assert persister.list_app_ids("p2") == ["d", "c"]


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: p.list_steps("x", ""), "app_id is required"),
        (lambda p: p.list_steps("x", None), "app_id must be a string"),
        (lambda p: p.list_steps("x", "a", limit=-1), "limit must be 0 or more"),
        (lambda p: p.list_steps("x", "a", limit=True), "limit must be a whole number"),
        (lambda p: p.list_steps("x", "a", before_sequence_id=-1), "before_sequence_id must be 0 or more"),
        (lambda p: p.list_steps("x", "a", before_sequence_id=1.5), "before_sequence_id must be a whole"),
        (lambda p: p.list_steps("x", "a", limit=2**32), "limit cannot be sent"),
        (lambda p: p.delete_app("x", ""), "app_id is required"),
        (lambda p: p.delete_app("x", None), "use delete_partition"),
        (lambda p: p.delete_partition(5), "partition_key cannot be sent"),
        (lambda p: p.prune("x"), "prune needs keep_last or older_than"),
        (lambda p: p.prune("x", keep_last=0), "prune needs keep_last or older_than"),
        (lambda p: p.prune("x", keep_last=-1), "keep_last must be 0 or more"),
        (lambda p: p.prune(app_id="a", keep_last=1), "needs its partition_key"),
        (lambda p: p.prune("x", app_id="", keep_last=1), "app_id is required"),
        (lambda p: p.prune("x", older_than="2024-01-01"), "older_than must be a datetime"),
        (lambda p: p.prune("x", older_than=1700000000), "older_than must be a datetime"),
    ],
)
def test_bad_arguments_fail_before_anything_is_sent(closed_port, call, message):
    """Against a port nothing listens on: these never reach the network (list_steps raises when
    called, not when first iterated)."""
    persister = GrpcStatePersister.from_values("127.0.0.1", closed_port, retry_attempts=1)
    with pytest.raises(InvalidArgumentError, match=message) as raised:
        call(persister)
    assert isinstance(raised.value, ValueError)
    assert persister._channel is None


def test_the_servers_refusals_name_the_call(persister, partition):
    too_long = "x" * 5000
    with pytest.raises(InvalidArgumentError, match=r"list_steps\(partition_key=.*app_id='xxx.*failed at 127"):
        list(persister.list_steps(partition, too_long))
    with pytest.raises(InvalidArgumentError, match=r"delete_app\(.*INVALID_ARGUMENT"):
        persister.delete_app(partition, too_long)
    with pytest.raises(InvalidArgumentError, match=r"delete_partition\("):
        persister.delete_partition(too_long)
    with pytest.raises(InvalidArgumentError, match=r"prune\("):
        persister.prune(too_long, keep_last=1)
    with pytest.raises(InvalidArgumentError, match=r"list_steps\(.*INVALID_ARGUMENT"):
        list(persister.list_steps(partition, "a", limit=2**31))  # fits the field, over the server's bound


def test_listings_are_retried_and_deletes_are_not(closed_port):
    persister = GrpcStatePersister.from_values(
        "127.0.0.1", closed_port, retry_attempts=3, retry_initial_backoff_seconds=0.01
    )
    with pytest.raises(UnavailableError, match=f"list_steps.*127.0.0.1:{closed_port}.*3 attempts"):
        list(persister.list_steps("p", "a"))
    with pytest.raises(UnavailableError, match=r"delete_app.*\(1 attempt\)"):
        persister.delete_app("p", "a")
    with pytest.raises(UnavailableError, match=r"delete_partition.*\(1 attempt\)"):
        persister.delete_partition("p")
    with pytest.raises(UnavailableError, match=r"prune.*\(1 attempt\)"):
        persister.prune(keep_last=1)


def test_a_listing_started_while_the_server_is_down_succeeds_once_it_is_back(own_server):
    own_server.start()
    persister = GrpcStatePersister.from_values("127.0.0.1", own_server.port, retry_attempts=12)
    save_steps(persister, "p", "a", [(0, "s"), (1, "s")])
    steps = persister.list_steps("p", "a")
    own_server.stop()
    restarter = threading.Timer(0.5, own_server.start)
    restarter.start()
    try:
        assert [step["sequence_id"] for step in steps] == [1, 0]
    finally:
        restarter.join()
        persister.cleanup()


class ScriptedServicer(StatePersisterServicer):
    """Answers each ListSteps as the next entry of ``script`` says ("down": UNAVAILABLE at once;
    "partial": one chunk, then UNAVAILABLE; "ok": two chunks) and every delete with UNAVAILABLE,
    noting the deadline each call came with."""

    def __init__(self, script: list[str]):
        self.script = script
        self.calls: list[tuple[str, float]] = []

    def _note(self, name, context):
        self.calls.append((name, context.time_remaining()))

    def ListSteps(self, request, context):
        self._note("ListSteps", context)
        what = self.script.pop(0)
        if what == "down":
            context.abort(grpc.StatusCode.UNAVAILABLE, "the store is down")
        steps = [
            pb.PersistedState(app_id=request.app_id, sequence_id=n, position="s", status=pb.STATUS_COMPLETED)
            for n in (3, 2)
        ]
        yield pb.ListStepsResponse(steps=steps[:1])
        if what == "partial":
            context.abort(grpc.StatusCode.UNAVAILABLE, "the store went down")
        yield pb.ListStepsResponse(steps=steps[1:])

    def DeleteApp(self, request, context):
        self._note("DeleteApp", context)
        context.abort(grpc.StatusCode.UNAVAILABLE, "the store is down")

    def DeletePartition(self, request, context):
        self._note("DeletePartition", context)
        context.abort(grpc.StatusCode.UNAVAILABLE, "the store is down")

    def Prune(self, request, context):
        self._note("Prune", context)
        context.abort(grpc.StatusCode.UNAVAILABLE, "the store is down")


@pytest.fixture
def scripted():
    """A stand-in server whose ListSteps fails as the test scripts it."""
    servicer = ScriptedServicer([])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_StatePersisterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    settings = dict(
        retry_attempts=3,
        retry_initial_backoff_seconds=0.01,
        list_deadline_seconds=42,
        delete_deadline_seconds=123,
    )
    yield servicer, port, settings
    server.stop(None)


def check_deadlines(calls):
    for name, remaining in calls:
        expected = 42 if name == "ListSteps" else 123
        assert expected - 5 < remaining < expected + 1, (name, remaining)  # the wire rounds up


def test_list_steps_is_retried_before_its_first_chunk_only(scripted):
    servicer, port, settings = scripted
    with GrpcStatePersister.from_values("127.0.0.1", port, **settings) as persister:
        servicer.script[:] = ["down", "down", "ok"]
        assert sequence_ids(persister, "p", "a") == [3, 2]
        assert len(servicer.calls) == 3

        servicer.script[:] = ["partial", "ok"]
        steps = persister.list_steps("p", "a")
        assert next(steps)["sequence_id"] == 3
        with pytest.raises(UnavailableError, match=r"list_steps.*\(1 attempt\).*went down"):
            next(steps)
        assert servicer.script == ["ok"]  # not asked again: a new stream would repeat step 3

        servicer.script[:] = ["down"] * 3
        with pytest.raises(UnavailableError, match=r"3 attempts"):
            list(persister.list_steps("p", "a"))

        servicer.calls.clear()
        for delete in (
            lambda: persister.delete_app("p", "a"),
            lambda: persister.delete_partition("p"),
            lambda: persister.prune(keep_last=1),
        ):
            with pytest.raises(UnavailableError, match=r"\(1 attempt\)"):
                delete()
        assert [name for name, _ in servicer.calls] == ["DeleteApp", "DeletePartition", "Prune"]
        servicer.script[:] = ["ok"]
        list(persister.list_steps("p", "a"))
        check_deadlines(servicer.calls)


def test_async_list_steps_is_retried_before_its_first_chunk_only(scripted):
    servicer, port, settings = scripted

    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", port, **settings) as persister:
            servicer.script[:] = ["down", "down", "ok"]
            assert [step["sequence_id"] async for step in persister.list_steps("p", "a")] == [3, 2]
            assert len(servicer.calls) == 3

            servicer.script[:] = ["partial", "ok"]
            received = []
            with pytest.raises(UnavailableError, match=r"list_steps.*\(1 attempt\).*went down"):
                async for step in persister.list_steps("p", "a"):
                    received.append(step["sequence_id"])
            assert received == [3] and servicer.script == ["ok"]

            servicer.calls.clear()
            with pytest.raises(UnavailableError, match=r"\(1 attempt\)"):
                await persister.delete_app("p", "a")
            with pytest.raises(UnavailableError, match=r"\(1 attempt\)"):
                await persister.delete_partition("p")
            with pytest.raises(UnavailableError, match=r"\(1 attempt\)"):
                await persister.prune(keep_last=1)
            assert [name for name, _ in servicer.calls] == ["DeleteApp", "DeletePartition", "Prune"]
            servicer.script[:] = ["ok"]
            [step async for step in persister.list_steps("p", "a")]
            check_deadlines(servicer.calls)

    asyncio.run(scenario())


def token(name: str, partitions: list[str], access: str, **rights) -> dict:
    return {"name": name, "token": f"{name}-0123456789", "partitions": partitions, "access": access, **rights}


TOKENS = {
    "tokens": [
        token("writer", ["user-*"], "read-write"),
        token("eraser", ["user-*"], "read", delete=True),
        token("janitor", ["*"], "read", delete=True),
    ]
}


def test_deleting_needs_a_token_with_the_delete_right(tmp_path):
    (tmp_path / "tokens.json").write_text(json.dumps(TOKENS))
    auth = ("--auth-file", str(tmp_path / "tokens.json"))
    server = ServerProcess(f"sqlite:{tmp_path / 'state.db'}", extra_args=auth)
    server.start()
    try:

        def persister(token):
            return GrpcStatePersister.from_values("127.0.0.1", server.port, token=token, retry_attempts=1)

        names = ("writer", "eraser", "janitor")
        writer, eraser, janitor = (persister(f"{name}-0123456789") for name in names)
        save_steps(writer, "user-1", "a", [(0, "s"), (1, "s"), (2, "s")])
        save_steps(writer, "user-2", "b", [(0, "s"), (1, "s")])
        assert sequence_ids(writer, "user-1", "a") == [2, 1, 0]  # listing is reading

        for delete in (
            lambda: writer.delete_app("user-1", "a"),
            lambda: writer.delete_partition("user-1"),
            lambda: writer.prune("user-1", keep_last=1),
        ):
            with pytest.raises(PermissionDeniedError, match='token "writer" may not delete'):
                delete()
        with pytest.raises(PermissionDeniedError, match=r"prune\(partition_key=ALL_PARTITIONS"):
            eraser.prune(keep_last=1)  # every partition: beyond user-*
        with pytest.raises(PermissionDeniedError):
            eraser.delete_partition("team-1")

        assert eraser.prune("user-1", "a", keep_last=2) == 1
        assert eraser.delete_app("user-1", "a") == 2
        assert janitor.prune(keep_last=1) == 1
        assert eraser.delete_partition("user-2") == (1, 1)
        for instance in (writer, eraser, janitor):
            instance.cleanup()
    finally:
        server.stop()


# --- sharing -------------------------------------------------------------------------------------


def test_threads_list_and_delete_through_one_instance(server, partition):
    persister = GrpcStatePersister.from_values("127.0.0.1", server.port)  # fresh: the first calls race
    threads = 8
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work(index: int):
        app_id = f"app-{index}"
        start.wait()
        try:
            for round_ in range(5):
                save_steps(persister, partition, app_id, [(0, "s"), (1, "s"), (2, "s")])
                listed = persister.list_steps(partition, app_id, include_state=True)
                assert [step["sequence_id"] for step in listed] == [2, 1, 0]
                assert persister.prune(partition, app_id, keep_last=1) == 2
                assert persister.delete_app(partition, app_id) == 1
        except BaseException as error:  # reported below, from the main thread
            failures.append(error)

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert persister.list_app_ids(partition) == []
    persister.cleanup()


# --- the async persister -------------------------------------------------------------------------


def test_the_async_persister_lists_deletes_and_prunes(server, partition):
    async def collect(steps):
        return [step async for step in steps]

    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            for sequence_id, position in [(0, "first"), (2, "third"), (1, "z"), (1, "a"), (5, "last")]:
                state = State({"n": sequence_id})
                await persister.save(partition, "a", sequence_id, position, state, "completed")
            for sequence_id in range(3):
                await persister.save(partition, "b", sequence_id, "s", State({"n": sequence_id}), "completed")

            steps = await collect(persister.list_steps(partition, "a"))
            assert keys(steps) == [(5, "last"), (2, "third"), (1, "a"), (1, "z"), (0, "first")]
            assert {step["state"] for step in steps} == {None}
            assert steps[0]["created_at"] == (await persister.load(partition, "a"))["created_at"]
            with_state = await collect(
                persister.list_steps(partition, "a", before_sequence_id=2, limit=1, include_state=True)
            )
            assert keys(with_state) == [(1, "a")] and with_state[0]["state"].get_all() == {"n": 1}
            assert await collect(persister.list_steps(partition, "unknown")) == []

            async with contextlib.aclosing(persister.list_steps(partition, "a")) as early:
                async for step in early:
                    break

            assert await persister.prune(partition, "a", keep_last=3) == 2
            remaining = await collect(persister.list_steps(partition, "a"))
            assert [step["sequence_id"] for step in remaining] == [5, 2, 1]
            future = datetime.now(timezone.utc) + timedelta(hours=1)
            assert await persister.prune(partition, older_than=future) == 4
            assert await persister.delete_app(partition, "a") == 1
            assert await persister.load(partition, "a") is None
            assert await persister.list_app_ids(partition) == ["b"]
            await persister.save(partition, "a", 0, "first", State({"again": True}), "completed")
            assert await persister.delete_partition(partition) == DeletedPartition(2, 2)
            assert await persister.list_app_ids(partition) == []

    asyncio.run(scenario())


def test_the_async_persister_checks_arguments_and_maps_errors(closed_port, server, partition):
    async def scenario():
        offline = AsyncGrpcStatePersister.from_values(
            "127.0.0.1", closed_port, retry_attempts=2, retry_initial_backoff_seconds=0.01
        )
        with pytest.raises(InvalidArgumentError, match="app_id is required"):
            offline.list_steps(partition, "")  # at the call, before any iteration
        with pytest.raises(InvalidArgumentError, match="limit must be 0 or more"):
            offline.list_steps(partition, "a", limit=-1)
        with pytest.raises(InvalidArgumentError, match="app_id is required"):
            await offline.delete_app(partition, "")
        with pytest.raises(InvalidArgumentError, match="prune needs keep_last or older_than"):
            await offline.prune(partition)
        with pytest.raises(InvalidArgumentError, match="needs its partition_key"):
            await offline.prune(app_id="a", keep_last=1)
        with pytest.raises(UnavailableError, match=r"list_steps.*2 attempts"):
            [step async for step in offline.list_steps(partition, "a")]
        with pytest.raises(UnavailableError, match=r"delete_app.*\(1 attempt\)"):
            await offline.delete_app(partition, "a")
        with pytest.raises(UnavailableError, match=r"delete_partition.*\(1 attempt\)"):
            await offline.delete_partition(partition)
        with pytest.raises(UnavailableError, match=r"prune.*\(1 attempt\)"):
            await offline.prune(partition, keep_last=1)
        await offline.cleanup()

        async with AsyncGrpcStatePersister.from_values("127.0.0.1", server.port) as online:
            with pytest.raises(InvalidArgumentError, match=r"list_steps\(.*INVALID_ARGUMENT"):
                [step async for step in online.list_steps(partition, "x" * 5000)]
            with pytest.raises(InvalidArgumentError, match=r"delete_app\(.*INVALID_ARGUMENT"):
                await online.delete_app(partition, "x" * 5000)

    asyncio.run(scenario())


def test_the_async_persister_prunes_every_partition(own_server):
    own_server.start()

    async def scenario():
        async with AsyncGrpcStatePersister.from_values("127.0.0.1", own_server.port) as persister:
            for partition_key in ("p1", "", "p2"):
                for sequence_id in range(3):
                    await persister.save(partition_key, "a", sequence_id, "s", State({}), "completed")
            assert await persister.prune(None, keep_last=2) == 1
            assert await persister.prune(keep_last=1) == 2 + 1 + 2

    asyncio.run(scenario())


# --- a Burr application forked from a step found with list_steps ---------------------------------


@action(reads=["words"], writes=["words"])
def add_word(state: State) -> State:
    return state.update(words=[*state["words"], f"w{len(state['words'])}"])


@action(reads=["words"], writes=["shout"])
def shout(state: State) -> State:
    return state.update(shout=" ".join(state["words"]).upper())


def story(persister, app_id, partition_key, **initialize_from):
    return (
        ApplicationBuilder()
        .with_actions(add_word, shout)
        .with_transitions(("add_word", "shout"), ("shout", "add_word"))
        .initialize_from(
            persister,
            resume_at_next_action=True,
            default_state={"words": []},
            default_entrypoint="add_word",
            **initialize_from,
        )
        .with_state_persister(persister)
        .with_identifiers(app_id=app_id, partition_key=partition_key)
        .build()
    )


def test_a_burr_application_forks_from_a_step_found_with_list_steps(persister, partition):
    source = new_app_id("story")
    app = story(persister, source, partition)
    for _ in range(6):  # add_word, shout, add_word, shout, add_word, shout
        app.step()

    history = list(persister.list_steps(partition, source))
    assert [(step["sequence_id"], step["position"]) for step in history] == [
        (5, "shout"),
        (4, "add_word"),
        (3, "shout"),
        (2, "add_word"),
        (1, "shout"),
        (0, "add_word"),
    ]
    # The second add_word, found by position: the fork continues after it, with its state.
    chosen = [step for step in history if step["position"] == "add_word"][1]
    assert chosen["sequence_id"] == 2

    fork = new_app_id("fork")
    forked = story(
        persister,
        fork,
        partition,
        fork_from_app_id=source,
        fork_from_sequence_id=chosen["sequence_id"],
        fork_from_partition_key=partition,
    )
    assert forked.state["words"] == ["w0", "w1"]
    action_run, _, state = forked.step()
    assert (action_run.name, state["shout"]) == ("shout", "W0 W1")
    action_run, _, state = forked.step()
    assert (action_run.name, state["words"]) == ("add_word", ["w0", "w1", "w2"])

    assert [(s["sequence_id"], s["position"]) for s in persister.list_steps(partition, fork)] == [
        (4, "add_word"),
        (3, "shout"),
    ]
    assert [s["sequence_id"] for s in persister.list_steps(partition, source)] == [5, 4, 3, 2, 1, 0]

    # Erasing the source leaves the fork whole.
    assert persister.delete_app(partition, source) == 6
    resumed = story(persister, fork, partition)
    assert resumed.state["words"] == ["w0", "w1", "w2"]
    action_run, _, _ = resumed.step()
    assert action_run.name == "shout"
