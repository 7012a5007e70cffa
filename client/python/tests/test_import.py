"""`burr-state-server import`: Burr's own persisters (SQLite, PostgreSQL, Redis, MongoDB) write
their layouts, the compiled import copies them into SQLite and PostgreSQL stores, and a Burr
application resumes from the imported state through the Python client."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlparse

import pytest
from burr.core import State
from burr.core.persistence import SQLitePersister

from burr_grpc_persister import GrpcStatePersister
from burr_grpc_persister._gen import state_persister_pb2 as pb
from burr_grpc_persister._gen.state_persister_pb2_grpc import StatePersisterStub
from server_process import REPO_ROOT, ServerProcess
from test_applications import EXPECTED_ROWS, Flaky, counter_app

import grpc

DATABASES = {"postgres": "BURR_TEST_POSTGRES_URL", "redis": "BURR_TEST_REDIS_URL", "mongodb": "BURR_TEST_MONGO_URL"}


def database_url(name: str) -> str:
    url = os.environ.get(DATABASES[name])
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs {DATABASES[name]} for the import tests (source .ci/services.env)")
        pytest.skip(f"{DATABASES[name]} is not set (bash .ci/services.sh up && source .ci/services.env)")
    return url


def unique(label: str) -> str:
    return f"{label}_{uuid.uuid4().hex[:10]}"


# --- What Burr's persisters write ---------------------------------------------------------------

#: States a team may have saved: key order, non-ASCII text, floats, big integers, nesting.
TRICKY_STATES = [
    {"zeta": 1, "alpha": 2, "10": "ten", "2": "two"},
    {"text": "é 日本 🎉 \u2028 \"quoted\" back\\slash", "control": "a\tb\nc"},
    {"floats": [1.0, 0.1, 1e-05, 1e16, -0.0, 123.456, 2.5e-300], "big": 12345678901234567890123, "neg": -7},
    {"nested": {"list": [[], {}, [1, [2, [3]]]], "none": None, "flags": [True, False]}},
]


def save_burr_steps(persister, default_partition) -> list[tuple]:
    """Runs the counter app until its flaky action fails (four steps, the last 'failed'), then
    saves a few more steps with real States: other apps, the default partition, any status."""
    with pytest.raises(ConnectionError):
        counter_app(persister, "counter", "team-a", Flaky(failures=1)).run(halt_after=["finish"])
    for sequence_id, values in enumerate(TRICKY_STATES):
        persister.save("team-a", "tricky", sequence_id, f"step_{sequence_id}", State(values), "completed")
    persister.save("team-b", "other", 0, "start", State({"n": 1}), "paused")
    persister.save(default_partition, "defaulted", 7, "start", State({"n": 2}), "completed")
    persister.save("team-a", "counter-copy", 0, "count_up", State({"count": 0, "history": []}), "completed")


def sql_time(text) -> datetime:
    return datetime.fromisoformat(str(text)).replace(tzinfo=timezone.utc)


class SqliteLayout:
    name = "sqlite"

    def __init__(self, tmp_path):
        self.path = tmp_path / "burr.db"
        self.table = unique("burr_state")

    def write(self):
        # check_same_thread=False: Burr's __del__ closes the connection again from whatever thread collects it.
        with SQLitePersister(str(self.path), table_name=self.table, connect_kwargs={"check_same_thread": False}) as persister:
            persister.initialize()
            save_burr_steps(persister, None)

    def source_url(self) -> str:
        return f"burr-sqlite:{self.path}?table={self.table}"

    def rows(self) -> list[dict]:
        with sqlite3.connect(self.path) as db:
            found = db.execute(
                f"SELECT partition_key, app_id, sequence_id, position, status, state, created_at FROM {self.table} ORDER BY created_at, rowid"
            ).fetchall()
        return [row_of(*row[:6], sql_time(row[6])) for row in found]

    def cleanup(self):
        pass


class PostgresLayout:
    name = "postgres"

    def __init__(self, tmp_path):
        self.url = database_url("postgres")
        self.table = unique("burr_src")

    def connect(self):
        import psycopg2

        return psycopg2.connect(self.url)

    def write(self):
        from burr.integrations.persisters.b_psycopg2 import PostgreSQLPersister

        persister = PostgreSQLPersister(self.connect(), table_name=self.table)
        persister.initialize()
        save_burr_steps(persister, "")
        persister.cleanup()

    def source_url(self) -> str:
        return f"burr-{self.url}{'&' if '?' in self.url else '?'}table={self.table}"

    def rows(self) -> list[dict]:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(
                f"SELECT partition_key, app_id, sequence_id, position, status, state::text, created_at::timestamptz FROM {self.table} ORDER BY created_at"
            )
            return [row_of(*row) for row in cursor.fetchall()]

    def cleanup(self):
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")


class RedisLayout:
    name = "redis"
    db = 3  # a database of its own: the server's stores use 0

    def __init__(self, tmp_path):
        self.url = urlparse(database_url("redis"))
        self.namespace = unique("burrns")

    def client(self):
        import redis

        return redis.Redis(host=self.url.hostname, port=self.url.port, db=self.db)

    def write(self):
        from burr.integrations.persisters.b_redis import RedisBasePersister

        persister = RedisBasePersister(self.client(), namespace=self.namespace)
        save_burr_steps(persister, "")

    def source_url(self) -> str:
        return f"burr-redis://{self.url.hostname}:{self.url.port}/{self.db}?namespace={self.namespace}"

    def keys(self):
        return [key for key in self.client().scan_iter(f"{self.namespace}:*") if self.client().type(key) == b"hash"]

    def rows(self) -> list[dict]:
        found = []
        for key in self.keys():
            data = {name.decode(): value.decode() for name, value in self.client().hgetall(key).items()}
            found.append(
                row_of(data["partition_key"], data["app_id"], int(data["sequence_id"]), data["position"], data["status"], data["state"], datetime.fromisoformat(data["created_at"]))
            )
        return sorted(found, key=lambda row: row["created_at"])

    def cleanup(self):
        client = self.client()
        for key in client.scan_iter(f"{self.namespace}:*"):
            client.delete(key)


class MongoLayout:
    name = "mongodb"

    def __init__(self, tmp_path):
        self.url = database_url("mongodb")
        self.database = urlparse(self.url).path.strip("/") or "burr"
        self.collection = unique("burr_src")

    def write(self):
        from burr.integrations.persisters.b_mongodb import MongoDBBasePersister

        persister = MongoDBBasePersister.from_values(uri=self.url, db_name=self.database, collection_name=self.collection)
        save_burr_steps(persister, None)
        persister.client.close()

    def source_url(self) -> str:
        return f"burr-{self.url}{'&' if '?' in self.url else '?'}collection={self.collection}"

    def documents(self):
        from pymongo import MongoClient

        return MongoClient(self.url)[self.database][self.collection]

    def rows(self) -> list[dict]:
        docs = self.documents().find().sort([("created_at", 1), ("_id", 1)])
        return [
            row_of(d["partition_key"], d["app_id"], d["sequence_id"], d["position"], d["status"], d["state"], datetime.fromisoformat(d["created_at"]))
            for d in docs
        ]

    def cleanup(self):
        self.documents().drop()


def row_of(partition_key, app_id, sequence_id, position, status, state_text, created_at) -> dict:
    return {
        "partition_key": partition_key or "",
        "app_id": app_id,
        "sequence_id": sequence_id,
        "position": position,
        "status": status,
        # What Burr loads from the row, saved again by the Python persister: the bytes to expect.
        "state": json.dumps(State.deserialize(json.loads(state_text)).serialize()).encode(),
        "created_at": created_at,
    }


LAYOUTS = [SqliteLayout, PostgresLayout, RedisLayout, MongoLayout]


# --- The import command -------------------------------------------------------------------------


def run_import(source_url: str, store_url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["node", "server/dist/main.js", "import", "--from", source_url, "--store", store_url, *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def summary(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"read (\d+), written (\d+), already present (\d+), failed (\d+), elapsed [\d.]+ s\n", result.stdout)
    assert match, result.stdout
    return dict(zip(("read", "written", "already_present", "failed"), map(int, match.groups())))


@pytest.fixture(params=["sqlite", "postgres", "redis", "mongodb"])
def target(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'target.db'}"
        return
    base = database_url(request.param)
    name = unique("burr_import")
    option = {"postgres": "table", "redis": "prefix", "mongodb": "collection"}[request.param]
    yield f"{base}{'&' if '?' in base else '?'}{option}={name}"
    if request.param == "postgres":
        import psycopg2

        with psycopg2.connect(base) as connection, connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "{name}", "{name}_apps"')
    elif request.param == "redis":
        import redis

        client = redis.Redis.from_url(base)
        for key in client.scan_iter(f"{name}:*"):
            client.delete(key)
    else:
        from pymongo import MongoClient

        database = MongoClient(base)[urlparse(base).path.strip("/") or "burr"]
        for collection in database.list_collection_names():
            if collection.startswith(name):
                database.drop_collection(collection)


@pytest.fixture(params=LAYOUTS, ids=lambda layout: layout.name)
def layout(request, tmp_path):
    source = request.param(tmp_path)
    source.write()
    yield source
    source.cleanup()


def imported_rows(server: ServerProcess, source_rows: list[dict]) -> list[dict]:
    """Every step of every app the source has, read back through the Python client and the raw stub."""
    found = []
    with GrpcStatePersister.from_values("127.0.0.1", server.port) as persister, grpc.insecure_channel(server.target) as channel:
        stub = StatePersisterStub(channel)
        for partition_key, app_id in sorted({(row["partition_key"], row["app_id"]) for row in source_rows}):
            for step in persister.list_steps(partition_key, app_id):
                loaded = stub.Load(pb.LoadRequest(partition_key=partition_key, app_id=app_id, sequence_id=step["sequence_id"]))
                found.append(
                    {
                        "partition_key": step["partition_key"],
                        "app_id": step["app_id"],
                        "sequence_id": step["sequence_id"],
                        "position": step["position"],
                        "status": step["status"],
                        "state": loaded.persisted_state.state,
                        "created_at": datetime.fromisoformat(step["created_at"]),
                    }
                )
    return found


def to_ms(when: datetime) -> datetime:
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def test_imports_every_step_of_burrs_layout_and_the_app_resumes(layout, target):
    source_rows = layout.rows()
    assert len(source_rows) == 4 + len(TRICKY_STATES) + 3

    first = summary(run_import(layout.source_url(), target))
    assert first == {"read": len(source_rows), "written": len(source_rows), "already_present": 0, "failed": 0}

    server = ServerProcess(target, init=False).start()
    try:
        expected = sorted(({**row, "created_at": to_ms(row["created_at"])} for row in source_rows), key=step_order)
        assert sorted(imported_rows(server, source_rows), key=step_order) == expected

        # Write order is Burr's: each partition's latest step and its app listing follow it.
        with GrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            for partition_key in {row["partition_key"] for row in source_rows}:
                in_partition = [row for row in source_rows if row["partition_key"] == partition_key]
                latest = persister.load(partition_key, None)
                assert (latest["app_id"], latest["sequence_id"]) == (in_partition[-1]["app_id"], in_partition[-1]["sequence_id"])
                by_last_write = list(dict.fromkeys(row["app_id"] for row in reversed(in_partition)))
                assert persister.list_app_ids(partition_key) == by_last_write

        # Twice: nothing duplicated, nothing rewritten.
        second = summary(run_import(layout.source_url(), target))
        assert second == {"read": len(source_rows), "written": 0, "already_present": len(source_rows), "failed": 0}
        assert sorted(imported_rows(server, source_rows), key=step_order) == expected

        # The application Burr left failed at call_service resumes from the imported state.
        with GrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
            app = counter_app(persister, "counter", "team-a", Flaky(failures=0))
            assert app.state["count"] == 3
            _, _, final = app.run(halt_after=["finish"])
            assert (final["count"], final["history"], final["done"]) == (30, [1, 2, 3], True)
            steps = [(s["sequence_id"], s["position"], s["status"]) for s in persister.list_steps("team-a", "counter")]
            assert list(reversed(steps)) == EXPECTED_ROWS
    finally:
        server.stop()


def step_order(row: dict):
    return (row["partition_key"], row["app_id"], row["sequence_id"], row["position"])


def test_only_one_partition_when_asked(tmp_path):
    source = SqliteLayout(tmp_path)
    source.write()
    target = f"sqlite:{tmp_path / 'target.db'}"
    counted = summary(run_import(source.source_url(), target, "--partition", "team-b"))
    assert counted == {"read": 1, "written": 1, "already_present": 0, "failed": 0}


def test_a_killed_import_resumes_and_every_step_is_there_once(tmp_path):
    steps = 20_000  # seconds of import work: the kill lands midway
    source = tmp_path / "burr.db"
    with SQLitePersister(str(source), connect_kwargs={"check_same_thread": False}) as persister:
        persister.initialize()
        persister.connection.execute("PRAGMA synchronous=OFF")  # a faster setup; the rows are Burr's all the same
        for sequence_id in range(steps):
            persister.save("bulk", f"app-{sequence_id % 7}", sequence_id, "act", State({"i": sequence_id}), "completed")
    target_file = tmp_path / "target.db"
    command = ["node", "server/dist/main.js", "import", "--from", f"burr-sqlite:{source}", "--store", f"sqlite:{target_file}?table=imported"]

    running = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while stored(target_file) == 0:
            assert running.poll() is None, running.communicate()
            time.sleep(0.05)
        running.send_signal(signal.SIGKILL)
    finally:
        running.wait()
    at_kill = stored(target_file)
    assert 0 < at_kill < steps, "the import should have been killed midway"

    resumed = summary(run_import(f"burr-sqlite:{source}", f"sqlite:{target_file}?table=imported"))
    assert resumed["read"] == steps and resumed["failed"] == 0
    assert resumed["already_present"] >= at_kill and resumed["written"] + resumed["already_present"] == steps
    with sqlite3.connect(target_file) as db:
        keys = db.execute("SELECT app_id, sequence_id FROM imported").fetchall()
    assert sorted(keys, key=lambda key: key[1]) == [(f"app-{n % 7}", n) for n in range(steps)]


def stored(target_file) -> int:
    if not target_file.exists():
        return 0
    try:
        with sqlite3.connect(target_file, timeout=5) as db:
            return db.execute("SELECT count(*) FROM imported").fetchone()[0]
    except sqlite3.OperationalError:  # the store has not made its table yet
        return 0


def test_bad_arguments_exit_2_with_a_clear_message(tmp_path):
    result = run_import("sqlite:./burr.db", f"sqlite:{tmp_path / 't.db'}")
    assert result.returncode == 2
    assert "not a Burr persister layout" in result.stderr and "burr-sqlite:PATH" in result.stderr
    same = run_import(f"burr-sqlite:{tmp_path / 'x.db'}", f"sqlite:{tmp_path / 'x.db'}")
    assert same.returncode == 2 and "same table" in same.stderr


def test_a_terminal_gets_a_progress_bar_and_a_pipe_only_the_summary(tmp_path):
    import pty

    source = SqliteLayout(tmp_path)
    source.write()
    controller, terminal = pty.openpty()
    with open(os.devnull, "w") as quiet:
        shown = subprocess.run(
            ["node", "server/dist/main.js", "import", "--from", source.source_url(), "--store", f"sqlite:{tmp_path / 'tty.db'}"],
            cwd=REPO_ROOT, stdout=quiet, stderr=terminal, timeout=120,
        )
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's other end is closed: everything is read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    assert shown.returncode == 0
    assert re.search(rb"\r\[#{30}\] 11/11 steps \(100%\)", drawn), drawn

    piped = run_import(source.source_url(), f"sqlite:{tmp_path / 'piped.db'}")
    assert "\r" not in piped.stderr and "[" not in piped.stderr
    assert summary(piped)["written"] == 11


def test_a_step_the_store_refuses_is_reported_and_the_others_are_written(tmp_path):
    source = tmp_path / "burr.db"
    with SQLitePersister(str(source), connect_kwargs={"check_same_thread": False}) as persister:
        persister.initialize()
        persister.save("p", "fine", 0, "act", State({"n": 0}), "completed")
        persister.save("p", "x" * 2000, 0, "act", State({"n": 1}), "completed")  # over the store's 1024-byte key limit
        persister.save("p", "fine", 1, "act", State({"n": 2}), "completed")

    result = run_import(f"burr-sqlite:{source}", f"sqlite:{tmp_path / 'target.db'}")

    assert result.returncode == 1
    assert result.stdout.startswith("read 3, written 2, already present 0, failed 1,")
    assert re.search(r'not written: partition_key="p" app_id="x{2000}" sequence_id=0 position="act": .*app_id', result.stderr), result.stderr
