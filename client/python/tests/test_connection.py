"""Reaching the server: deadlines, retries, an unreachable or restarting server.

TLS and tokens are in test_security.py.
"""

from __future__ import annotations

import threading
import time

import pytest
from burr.core import State

from burr_grpc_persister import (
    DeadlineExceededError,
    GrpcStatePersister,
    UnavailableError,
)
from helpers import new_app_id


def test_an_unreachable_server_says_where_and_how_often_it_tried(closed_port):
    persister = GrpcStatePersister.from_values("127.0.0.1", closed_port, retry_initial_backoff_seconds=0.01)

    with pytest.raises(
        UnavailableError, match=rf"load\(.*127\.0\.0\.1:{closed_port} is unavailable \(5 attempts\)"
    ) as raised:
        persister.load("", "app")
    assert isinstance(raised.value, ConnectionError)
    # Save may have landed before a connection broke, so it is never repeated.
    with pytest.raises(UnavailableError, match=r"save\(.*\(1 attempt\)"):
        persister.save("", "app", 0, "step", State(), "completed")


def test_every_call_has_a_deadline(server):
    hurried = GrpcStatePersister.from_values("127.0.0.1", server.port, deadline_seconds=1e-6)
    with pytest.raises(DeadlineExceededError) as raised:
        hurried.load("", "app")
    assert isinstance(raised.value, TimeoutError)


def test_reads_retry_until_a_restarting_server_is_back(own_server, partition):
    own_server.start()
    app_id = new_app_id()
    persister = GrpcStatePersister.from_values(
        "127.0.0.1", own_server.port, retry_attempts=60, retry_max_backoff_seconds=0.5
    )
    persister.save(partition, app_id, 0, "step", State({"n": 0}), "completed")

    own_server.stop()
    with pytest.raises(UnavailableError, match=r"\(1 attempt\)"):
        persister.save(partition, app_id, 1, "step", State({"n": 1}), "completed")
    restart = threading.Thread(target=lambda: (time.sleep(0.5), own_server.start()))
    restart.start()
    loaded = persister.load(partition, app_id)  # retried while the server starts again
    restart.join()

    assert loaded["state"]["n"] == 0
    persister.save(partition, app_id, 1, "step", State({"n": 1}), "completed")
    assert persister.load(partition, app_id)["sequence_id"] == 1
    persister.cleanup()
