"""The Python row of `npm run bench`: Burr's own persisters against burr_grpc_persister.GrpcStatePersister.

Run by bench/lib/python-row.ts with client/python/.venv's python, once per side (one process
measures Burr's persister, another one the gRPC client), so that neither side pays for the
other's imports, threads or garbage. Each measurement is printed as one JSON line on stdout.

    python burr_vs_client.py preload --side burr --db postgres --postgres-dsn DSN --postgres-schema S --apps 500 --steps 4
    python burr_vs_client.py measure --side client --db sqlite --address 127.0.0.1:PORT \\
        --cases save:1,save:4,load-latest:1,load-latest:4 --warmup-s 0.5 --measure-s 2 --tag r1

Sides:
  burr    Burr's persister in this process: PostgreSQLPersister (psycopg2) or SQLitePersister.
  client  GrpcStatePersister against the server (whose store is the same database, its own schema
          or file), started by the TypeScript bench.

A case is `operation:threads[:setup]`. Operations: `save` (each thread saves the next step of an
app of its own, sequence ids 0, 1, 2, ...) and `load-latest` (each thread loads the latest step of
a random preloaded app). Every call goes through the persister's public methods, so both sides pay
for State.serialize + json.dumps on save and json.loads + State.deserialize on load.

Setups of Burr's persister with several threads (the `setup` part of a case):
  shared      one persister used by every thread.
  per-thread  one persister per thread, each with its own connection.
The bench measures the setup a Burr user should pick (one persister per thread); see BURR_SETUPS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import threading
import time
import traceback
from typing import Callable, Optional

# Measure the client of this working tree, not whatever copy `pip install` left in the venv.
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "client", "python", "src"))

from burr.core import State  # noqa: E402

SAVE_PARTITION = "bench-py"
LOAD_PARTITION = "bench-py-load"
STATE_BYTES = 2048
POSITIONS = ("prompt", "retrieve", "respond", "safety_check")

# Which Burr setup the comparison uses with several threads, and why (read in burr 0.43.0's source,
# and tried): one persister per thread, each with its own connection, for both databases.
#
# - PostgreSQL: PostgreSQLPersister runs every call on its one psycopg2 connection outside
#   autocommit (INSERT, then connection.commit()) and never rolls back. Threads sharing it share one
#   transaction: psycopg2 survives being shared (threadsafety 2), but an INSERT that fails (a
#   duplicate step, as when two processes resume the same app) aborts the transaction, and every
#   thread's next save then fails with InFailedSqlTransaction until some commit ends it (tried: 4
#   threads x 200 saves, one of them repeating a step now and then: 3 duplicates, 582 other saves
#   failed). So a user gives each thread its
#   own persister, as a web app gives each worker its own connection. Burr has no pool for it, and
#   no copy() (its parallelism would share the instance). One shared instance, for the record, saves
#   about a third as fast as one per thread here: its threads queue on the one connection.
# - SQLite: the persister's docstring suggests check_same_thread=False for multithreaded use, but a
#   shared SQLitePersister is not safe: Python's sqlite3 module keeps its implicit-transaction state
#   per connection, and concurrent save()s interleave its BEGIN/INSERT/COMMIT (tried, 4 threads x 60
#   saves: "cannot start a transaction within a transaction", "cannot commit - no transaction is
#   active", "SystemError: error return without exception set", and saves lost). One persister per
#   thread is what Burr itself does for parallel sub-applications (SQLitePersister.copy(), called by
#   burr.core.parallelism), so that is the setup measured: each thread has its own connection to the
#   same file, and SQLite's file lock (default rollback journal, as Burr leaves it) serializes writers.
#
# `operation:threads:shared` measures the shared setup anyway (not part of the bench's rows).
BURR_SETUPS = {"postgres": "per-thread", "sqlite": "per-thread"}


def realistic_state(target_bytes: int = STATE_BYTES) -> State:
    """A chat agent's state, as a Burr app keeps it, of exactly `target_bytes` serialized bytes."""
    rng = random.Random(7)
    words = (
        "the of and to in is that for it as with was on be by this are from at or an have not which "
        "retrieval context answer question user model token document vector search ranking prompt "
        "summary latency persister state application step action transition graph memory tool"
    ).split()

    def sentence(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."

    history = []
    for turn in range(5):
        history.append({"role": "user", "content": sentence(8 + turn)})
        history.append({"role": "assistant", "content": sentence(12 + 2 * turn)})
    values = {
        "chat_history": history,
        "prompt": sentence(14),
        "response": {"role": "assistant", "content": sentence(20), "finish_reason": "stop"},
        "retrieved": [
            {"doc_id": f"doc-{rng.randrange(10**6):06d}", "score": round(rng.random(), 4), "chunk": rng.randrange(40)}
            for _ in range(4)
        ],
        "mode": "answer_question",
        "safe": True,
        "turn": 5,
        "usage": {"model": "gpt-4o-mini", "temperature": 0.2, "prompt_tokens": 1432, "completion_tokens": 187},
        "padding": "",
    }
    size = len(json.dumps(State(values).serialize()))
    if size > target_bytes:
        raise ValueError(f"the state is {size} bytes before padding, over {target_bytes}")
    values["padding"] = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(target_bytes - size))
    state = State(values)
    assert len(json.dumps(state.serialize())) == target_bytes
    return state


def app_id(index: int) -> str:
    return f"app-{index:06d}"


class Side:
    """Makes the persisters of one side and knows how to release them."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.opened: list = []

    def persister(self):
        """A new persister (its own connection or channel)."""
        args = self.args
        if args.side == "client":
            from burr_grpc_persister import GrpcStatePersister

            host, port = args.address.rsplit(":", 1)
            made = GrpcStatePersister.from_values(host=host, port=int(port))
        elif args.db == "postgres":
            import psycopg2
            from burr.integrations.persisters.b_psycopg2 import PostgreSQLPersister

            # The persister's own table name, in a schema of this run (search_path), so the
            # bench can drop everything with the schema.
            connection = psycopg2.connect(args.postgres_dsn, options=f"-c search_path={args.postgres_schema}")
            made = PostgreSQLPersister(connection, table_name="burr_state")
        else:
            from burr.core.persistence import SQLitePersister

            # check_same_thread=False because this (main) thread opens the persisters that the
            # measuring threads use; with the per-thread setup each connection has one user.
            made = SQLitePersister.from_values(args.sqlite_path, connect_kwargs={"check_same_thread": False})
        self.opened.append(made)
        return made

    def for_threads(self, threads: int, setup: str) -> list:
        if self.args.side == "client" or setup == "shared":
            # The client: one GrpcStatePersister shared by all threads (one channel), as its
            # README says it may be.
            one = self.persister()
            return [one] * threads
        return [self.persister() for _ in range(threads)]

    def close(self):
        for persister in self.opened:
            try:
                persister.cleanup()
            except Exception:  # already closed
                pass
        self.opened.clear()


def preload(args: argparse.Namespace) -> None:
    """Saves the fixture load-latest reads: `apps` apps of `steps` steps, through the side's persister."""
    side = Side(args)
    try:
        if args.side == "burr" and args.db == "postgres":
            import psycopg2

            with psycopg2.connect(args.postgres_dsn) as connection, connection.cursor() as cursor:
                cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{args.postgres_schema}"')
        sqlite_burr = args.side == "burr" and args.db == "sqlite"
        # Not measured, so as fast as each side allows: SQLite without fsync on this connection
        # only (writers queue on its file lock anyway), the others from 8 threads.
        threads = 1 if sqlite_burr else 8
        persisters = side.for_threads(threads, "shared" if args.side == "client" else "per-thread")
        if args.side == "burr":
            persisters[0].initialize()
        if sqlite_burr:
            persisters[0].connection.execute("PRAGMA synchronous=OFF")
        state = realistic_state()
        rows = [(index, step) for step in range(args.steps) for index in range(args.apps)]
        failures: list[BaseException] = []

        def lane(thread: int) -> None:
            try:
                for index, step in rows[thread::threads]:
                    position = POSITIONS[step % len(POSITIONS)]
                    persisters[thread].save(LOAD_PARTITION, app_id(index), step, position, state, "completed")
            except BaseException as error:
                failures.append(error)

        began = time.perf_counter()
        workers = [threading.Thread(target=lane, args=(thread,)) for thread in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise failures[0]
        seconds = time.perf_counter() - began
        emit({"kind": "preload", "side": args.side, "db": args.db, "rows": len(rows), "seconds": seconds})
    finally:
        side.close()


def measure_case(args: argparse.Namespace, side: Side, operation: str, threads: int, setup: str, state: State) -> dict:
    persisters = side.for_threads(threads, setup)
    apps = args.apps

    def operation_for(thread: int) -> Callable[[], None]:
        persister = persisters[thread]
        if operation == "save":
            app = f"save-{args.tag}-{operation}-{threads}-{setup}-{thread}"
            sequence = iter(range(10**12))

            def save() -> None:
                step = next(sequence)
                persister.save(SAVE_PARTITION, app, step, POSITIONS[step % len(POSITIONS)], state, "completed")

            return save
        if operation == "load-latest":
            rng = random.Random(thread)

            def load() -> None:
                if persister.load(LOAD_PARTITION, app_id(rng.randrange(apps))) is None:
                    raise LookupError("load returned None: the fixture is missing")

            return load
        raise ValueError(f"unknown operation {operation}")

    calls = [operation_for(thread) for thread in range(threads)]
    lock = threading.Lock()
    latencies: list[float] = []
    errors = {"count": 0, "first": None}
    last_end = [0.0]
    barrier = threading.Barrier(threads + 1)
    window = {}

    def lane(thread: int) -> None:
        call = calls[thread]
        mine: list[float] = []
        my_errors, first, my_last = 0, None, 0.0
        barrier.wait()
        measure_from, stop_at = window["from"], window["stop"]
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                break
            try:
                call()
                failed = False
            except Exception as error:  # counted and reported; the run goes on
                failed = True
                if first is None:
                    first = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            ended = time.perf_counter()
            if began >= measure_from:
                if failed:
                    my_errors += 1
                else:
                    mine.append(ended - began)
                my_last = ended
            if failed:
                time.sleep(0.001)
        with lock:
            latencies.extend(mine)
            errors["count"] += my_errors
            if errors["first"] is None:
                errors["first"] = first
            last_end[0] = max(last_end[0], my_last)

    workers = [threading.Thread(target=lane, args=(thread,), daemon=True) for thread in range(threads)]
    for worker in workers:
        worker.start()
    now = time.perf_counter()
    window["from"] = now + args.warmup_s
    window["stop"] = window["from"] + args.measure_s
    barrier.wait()
    for worker in workers:
        worker.join()
    side.close()
    elapsed = max(last_end[0] - window["from"], 1e-9)
    latencies.sort()

    def percentile(p: float) -> Optional[float]:
        if not latencies:
            return None
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {
        "kind": "measurement",
        "side": args.side,
        "db": args.db,
        "operation": operation,
        "threads": threads,
        "setup": "shared" if args.side == "client" else setup,
        "calls": len(latencies),
        "errors": errors["count"],
        "firstError": errors["first"],
        "elapsedS": elapsed,
        "statesPerSec": len(latencies) / elapsed,
        "p50Ms": percentile(0.5),
        "p99Ms": percentile(0.99),
        "meanMs": 1000 * sum(latencies) / len(latencies) if latencies else None,
        "tag": args.tag,
    }


def measure(args: argparse.Namespace) -> None:
    state = realistic_state()
    side = Side(args)
    for case in args.cases.split(","):
        parts = case.split(":")
        operation, threads = parts[0], int(parts[1])
        setup = parts[2] if len(parts) > 2 else ("shared" if threads == 1 else BURR_SETUPS[args.db])
        emit(measure_case(args, side, operation, threads, setup, state))


def info(args: argparse.Namespace) -> None:
    import importlib.metadata as metadata
    import sqlite3

    import burr_grpc_persister

    versions = {}
    for package in ("apache-burr", "grpcio", "protobuf", "psycopg2-binary"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    emit(
        {
            "kind": "info",
            "python": platform.python_version(),
            "packages": versions,
            "sqlite": sqlite3.sqlite_version,
            "sqlite3Threadsafety": sqlite3.threadsafety,
            "client": os.path.relpath(burr_grpc_persister.__file__, REPO),
            "stateBytes": len(json.dumps(realistic_state().serialize())),
            "burrSetups": BURR_SETUPS,
        }
    )


def emit(line: dict) -> None:
    print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["info", "preload", "measure"])
    parser.add_argument("--side", choices=["burr", "client"])
    parser.add_argument("--db", choices=["postgres", "sqlite"])
    parser.add_argument("--address", help="the server, host:port (client side)")
    parser.add_argument("--postgres-dsn", help="libpq URL of the database (Burr side)")
    parser.add_argument("--postgres-schema", help="schema of Burr's table (Burr side)")
    parser.add_argument("--sqlite-path", help="SQLite file of Burr's persister (Burr side)")
    parser.add_argument("--apps", type=int, default=500, help="preloaded apps that load-latest reads")
    parser.add_argument("--steps", type=int, default=4, help="preloaded steps per app")
    parser.add_argument("--cases", default="save:1,save:4,load-latest:1,load-latest:4")
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument("--measure-s", type=float, default=2.0)
    parser.add_argument("--tag", default=f"{os.getpid()}", help="makes the save apps' ids unique")
    args = parser.parse_args()
    try:
        {"info": info, "preload": preload, "measure": measure}[args.command](args)
    except Exception:
        traceback.print_exc()
        sys.exit(1)


if __name__ == "__main__":
    main()
