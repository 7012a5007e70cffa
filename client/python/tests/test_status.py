"""Any status string round-trips, as with Burr's own persisters (which store whatever they are
given), through both persisters and on every store the machine has."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from burr_grpc_persister import AsyncGrpcStatePersister, GrpcStatePersister, InvalidArgumentError
from helpers import new_app_id, state
from server_process import ServerProcess

#: Plain words, Burr's own two, case and spaces kept, Unicode, separators, and exactly the limit
#: (1024 UTF-8 bytes, in characters of 4, 3, 2 and 1 bytes).
STATUSES = [
    "completed",
    "failed",
    "in_progress",
    "Completed",
    " failed ",
    "terminé ✓ 状态 🎉",
    "a:b/c\\d\"e'f",
    "🎉" * 100 + "€" * 100 + "é" * 100 + "x" * 124,
]


def _store_urls() -> list[str]:
    urls = {"sqlite": None}
    for name, variable in (("postgres", "BURR_TEST_POSTGRES_URL"), ("redis", "BURR_TEST_REDIS_URL"), ("mongo", "BURR_TEST_MONGO_URL")):
        urls[name] = os.environ.get(variable)
    if os.environ.get("CI") == "true":
        missing = [name for name, url in urls.items() if name != "sqlite" and not url]
        assert not missing, f"CI needs the test databases for the status tests: {missing} (source .ci/services.env)"
    return [name for name, url in urls.items() if name == "sqlite" or url]


@pytest.fixture(scope="module", params=_store_urls())
def store_server(request, tmp_path_factory):
    name = request.param
    if name == "sqlite":
        url = f"sqlite:{tmp_path_factory.mktemp('status') / 'state.db'}"
    else:
        base = os.environ[{"postgres": "BURR_TEST_POSTGRES_URL", "redis": "BURR_TEST_REDIS_URL", "mongo": "BURR_TEST_MONGO_URL"}[name]]
        suffix = new_app_id("pystatus").replace("-", "_")
        option = {"postgres": "table", "redis": "prefix", "mongo": "collection"}[name]
        url = f"{base}{'&' if '?' in base else '?'}{option}={suffix}"
    process = ServerProcess(url)
    process.start()
    yield process
    process.stop()


@pytest.mark.parametrize("status", STATUSES, ids=lambda s: s if len(s) < 30 else f"{len(s.encode())}-bytes")
def test_sync_persister_round_trips_the_status(store_server, status):
    partition, app_id = new_app_id("part"), new_app_id()
    with GrpcStatePersister.from_values("127.0.0.1", store_server.port) as persister:
        persister.save(partition, app_id, 3, "step", state(n=1), status)
        assert persister.load(partition, app_id)["status"] == status
        assert persister.load(partition, app_id, 3)["status"] == status
        assert persister.load(partition, None)["status"] == status


@pytest.mark.parametrize("status", STATUSES, ids=lambda s: s if len(s) < 30 else f"{len(s.encode())}-bytes")
def test_async_persister_round_trips_the_status(store_server, status):
    async def scenario():
        partition, app_id = new_app_id("part"), new_app_id()
        persister = AsyncGrpcStatePersister.from_values("127.0.0.1", store_server.port)
        try:
            await persister.save(partition, app_id, 3, "step", state(n=1), status)
            assert (await persister.load(partition, app_id))["status"] == status
            assert (await persister.load(partition, app_id, 3))["status"] == status
        finally:
            await persister.cleanup()

    asyncio.run(scenario())


def test_latest_is_the_highest_step_whatever_the_status(store_server):
    partition, app_id = new_app_id("part"), new_app_id()
    with GrpcStatePersister.from_values("127.0.0.1", store_server.port) as persister:
        persister.save(partition, app_id, 9, "later", state(n=9), "in_progress")
        persister.save(partition, app_id, 2, "earlier", state(n=2), "completed")
        latest = persister.load(partition, app_id)
        assert (latest["sequence_id"], latest["status"]) == (9, "in_progress")


@pytest.mark.parametrize("status, reason", [("", "must not be empty"), ("x" * 1025, "1025 bytes"), ("in\x00progress", "NUL")])
def test_bad_statuses_are_refused_by_both_persisters(store_server, status, reason):
    partition, app_id = new_app_id("part"), new_app_id()
    with GrpcStatePersister.from_values("127.0.0.1", store_server.port) as persister:
        with pytest.raises(InvalidArgumentError, match=reason):
            persister.save(partition, app_id, 0, "step", state(), status)
        assert persister.load(partition, app_id) is None

    async def scenario():
        persister = AsyncGrpcStatePersister.from_values("127.0.0.1", store_server.port)
        try:
            with pytest.raises(InvalidArgumentError, match=reason):
                await persister.save(partition, app_id, 0, "step", state(), status)
        finally:
            await persister.cleanup()

    asyncio.run(scenario())


REPO_ROOT = Path(__file__).resolve().parents[3]


def test_every_client_reads_every_clients_status(store_server):
    """Python, the TypeScript async and sync clients, the embedded store and buf curl each write
    a custom status; each of them reads every one back exactly."""
    partition = new_app_id("interop")
    python_status = "python ✓ terminé"
    with GrpcStatePersister.from_values("127.0.0.1", store_server.port) as persister:
        persister.save(partition, "python", 1, "act", state(n=1), python_status)
        done = subprocess.run(
            ["node", "--conditions=burr-source", "--require", "tsx/cjs", "tests/interop/status-matrix.ts",
             store_server.target, store_server.store_url, partition, "python"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        expected = {**report["written"], "python": python_status}
        for reader, statuses in report["matrix"].items():
            assert statuses == expected, f"{reader} read {statuses}"
        assert {app: persister.load(partition, app)["status"] for app in expected} == expected
