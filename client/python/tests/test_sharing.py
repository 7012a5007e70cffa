"""Copies, pickling and threads: how Burr shares a persister between sub-applications and workers."""

from __future__ import annotations

import copy
import pickle
import threading

from burr.core import State

from burr_grpc_persister import AlreadyExistsError, GrpcStatePersister, PersisterError
from burr_grpc_persister._gen import state_persister_pb2 as pb
from helpers import new_app_id


def test_unpickled_persister_saves_and_loads(persister, partition):
    app_id = new_app_id()
    persister.save(
        partition, app_id, 0, "step", State({"n": 0}), "completed"
    )  # the original's channel is open

    clone = pickle.loads(pickle.dumps(persister))

    clone.save(partition, app_id, 1, "step", State({"n": 1}), "completed")
    assert clone.load(partition, app_id)["state"]["n"] == 1
    assert clone.settings == persister.settings
    assert clone._channel is not persister._channel
    clone.cleanup()


def test_copies_are_independent_channels_with_the_same_settings(persister, partition):
    persister.set_serde_kwargs({"example_option": 1})
    copies = [persister.copy(), copy.copy(persister), copy.deepcopy(persister)]

    for index, instance in enumerate([persister, *copies]):
        instance.save(partition, f"app-{index}", 0, "step", State({"i": index}), "completed")

    channels = {id(instance._channel) for instance in [persister, *copies]}
    assert len(channels) == 4
    assert all(instance.settings == persister.settings for instance in copies)
    assert all(instance.serde_kwargs == {"example_option": 1} for instance in copies)
    copies[0].cleanup()  # closing a copy leaves the original working
    assert persister.list_app_ids(partition) == ["app-3", "app-2", "app-1", "app-0"]
    for instance in copies[1:]:
        instance.cleanup()


def test_cleanup_then_use_opens_a_new_channel(persister, partition):
    persister.save(partition, "app", 0, "step", State(), "completed")
    persister.cleanup()
    assert persister.load(partition, "app")["sequence_id"] == 0


def test_sixteen_threads_save_through_one_instance(server, raw_stub, partition):
    """Also lists more app ids than one ListAppIds chunk holds (the server pages by 1000)."""
    threads, apps_per_thread = 16, 70
    persister = GrpcStatePersister.from_values("127.0.0.1", server.port)  # fresh: the first call races too
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work(thread_index: int):
        start.wait()
        try:
            for app_index in range(apps_per_thread):
                app_id = f"t{thread_index:02d}-a{app_index:03d}"
                persister.save(
                    partition, app_id, 0, "step", State({"t": thread_index, "a": app_index}), "completed"
                )
        except BaseException as error:  # reported below, from the main thread
            failures.append(error)

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert failures == []
    listed = persister.list_app_ids(partition)
    assert len(listed) == len(set(listed)) == threads * apps_per_thread
    chunks = list(raw_stub.ListAppIds(pb.ListAppIdsRequest(partition_key=partition), timeout=30))
    assert len(chunks) > 1 and [app_id for chunk in chunks for app_id in chunk.app_ids] == listed
    assert persister.load(partition, "t15-a069")["state"].get_all() == {"t": 15, "a": 69}
    persister.cleanup()


def test_concurrent_duplicates_store_one(persister, partition):
    """Many threads save the same key at once: exactly one wins, the others get AlreadyExistsError."""
    threads = 16
    start = threading.Barrier(threads)
    outcomes: list[object] = []

    def work(thread_index: int):
        start.wait()
        try:
            persister.save(partition, "contested", 0, "step", State({"winner": thread_index}), "completed")
            outcomes.append(thread_index)
        except AlreadyExistsError as error:
            outcomes.append(error)

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    winners = [outcome for outcome in outcomes if isinstance(outcome, int)]
    assert len(outcomes) == threads and len(winners) == 1
    assert persister.load(partition, "contested")["state"]["winner"] == winners[0]


def test_errors_pickle_with_their_class_and_code(persister, partition):
    persister.save(partition, "app", 0, "step", State(), "completed")
    try:
        persister.save(partition, "app", 0, "step", State(), "completed")
    except PersisterError as error:
        raised = error

    clone = pickle.loads(pickle.dumps(raised))

    assert type(clone) is AlreadyExistsError
    assert (clone.code, str(clone)) == (raised.code, str(raised))
