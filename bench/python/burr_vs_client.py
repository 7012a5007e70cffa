"""The Python row of `npm run bench`: Burr's own persisters against burr_grpc_persister.GrpcStatePersister.

Run by bench/lib/python-row.ts with client/python/.venv's python, once per side (one process
measures Burr's persister, another one the gRPC client), so that neither side pays for the
other's imports, threads or garbage. Each measurement is printed as one JSON line on stdout.

    python burr_vs_client.py preload --side burr --db postgres --postgres-dsn DSN --postgres-schema S --apps 500 --steps 4
    python burr_vs_client.py measure --side client --db sqlite --address 127.0.0.1:PORT \\
        --cases save:1,save:4,load-latest:1,load-step:16 --warmup-s 0.5 --measure-s 2 --tag r1
    python burr_vs_client.py hop --address NOOP_HOST:PORT --echo ECHO_HOST:PORT --measure-s 2

Sides:
  burr          Burr's persister in this process: PostgreSQLPersister (psycopg2), RedisBasePersister
                (redis-py) or SQLitePersister.
  client        GrpcStatePersister against the server (whose store is the same database, its own
                schema, key prefix or file), started by the TypeScript bench; one shared by the threads.
  async-client  AsyncGrpcStatePersister against the same server, one shared by as many asyncio
                tasks as the case has threads (one event loop).

A case is `operation:threads[:setup]`. Operations: `save` (each thread saves the next step of an
app of its own, sequence ids 0, 1, 2, ...), `load-latest` (each thread loads the latest step of a
random preloaded app) and `load-step` (a random step of a random preloaded app). Every call goes
through the persister's public methods, so both sides pay for State.serialize + json.dumps on save
and json.loads + State.deserialize on load.

`hop`: the sync client's Save and Load against bench/noop-server.ts (one thread), alternating in
blocks with a raw TCP request-response of the same sizes against bench/echo-server.ts: the hop's
p50 next to the loopback floor, measured in the same run.

`--cprofile FILE` (measure): cProfile of every measuring thread (or the event loop), merged per
case into FILE.<case>.pstats, with the top functions in FILE.<case>.txt.

Setups of Burr's persister with several threads (the `setup` part of a case):
  shared      one persister used by every thread.
  per-thread  one persister per thread, each with its own connection.
The bench measures the setup a Burr user should pick (one persister per thread); see BURR_SETUPS.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import socket
import struct
import platform
import random
import sys
import threading
import time
import traceback
from typing import Awaitable, Callable, Optional

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
# - Redis: RedisBasePersister wraps one redis.Redis, whose connection pool makes it safe to share;
#   the bench still gives each thread its own persister (and pool), as for the other databases, so
#   that no thread ever waits for another's connection.
#
# `operation:threads:shared` measures the shared setup anyway (not part of the bench's rows).
BURR_SETUPS = {"postgres": "per-thread", "redis": "per-thread", "sqlite": "per-thread"}


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


def redis_location(url: str) -> tuple[str, int, int]:
    """host, port and database number of redis://host:port[/db]."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379, int(parsed.path.lstrip("/") or 0)


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
        elif args.db == "redis":
            from burr.integrations.persisters.b_redis import RedisBasePersister

            # Burr's key layout under a namespace of this run, so the bench can drop its keys.
            host, port, db = redis_location(args.redis_url)
            made = RedisBasePersister.from_values(host=host, port=port, db=db, namespace=args.redis_namespace)
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


def operation_for(persister, operation: str, key: str, args: argparse.Namespace, state: State, seed: int):
    """`(call, check)`: `call()` makes one call of the persister and returns what it returns (a
    coroutine for the async client), `check(result)` raises when the answer is wrong."""
    if operation == "save":
        app = f"save-{args.tag}-{key}"
        sequence = iter(range(10**12))

        def save():
            step = next(sequence)
            return persister.save(SAVE_PARTITION, app, step, POSITIONS[step % len(POSITIONS)], state, "completed")

        return save, lambda result: None
    rng = random.Random(seed)

    def found(result) -> None:
        if result is None:
            raise LookupError("load returned None: the fixture is missing")

    if operation == "load-latest":
        return (lambda: persister.load(LOAD_PARTITION, app_id(rng.randrange(args.apps)))), found
    if operation == "load-step":
        return (lambda: persister.load(LOAD_PARTITION, app_id(rng.randrange(args.apps)), rng.randrange(args.steps))), found
    raise ValueError(f"unknown operation {operation}")


class Lane:
    """What one measuring thread or task recorded: the latencies and errors of the calls it began
    in the window (from `measure_from` on), its first error (warmup included), the end of its last
    measured call."""

    def __init__(self, measure_from: float):
        self.measure_from = measure_from
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error: Optional[str] = None
        self.last_end = 0.0

    def succeeded(self, began: float) -> None:
        ended = time.perf_counter()
        if began >= self.measure_from:
            self.latencies.append(ended - began)
            self.last_end = ended

    def failed(self, began: float, error: BaseException) -> None:
        ended = time.perf_counter()
        if self.first_error is None:
            self.first_error = error_text(error)
        if began >= self.measure_from:
            self.errors += 1
            self.last_end = ended


class Tally:
    """What the measuring lanes (threads or tasks) recorded: latencies in the window, errors, and
    the end of the last measured call."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error: Optional[str] = None
        self.last_end = 0.0

    def add(self, lane: Lane) -> None:
        with self.lock:
            self.latencies.extend(lane.latencies)
            self.errors += lane.errors
            if self.first_error is None:
                self.first_error = lane.first_error
            self.last_end = max(self.last_end, lane.last_end)

    def line(self, args: argparse.Namespace, operation: str, threads: int, setup: str, measure_from: float) -> dict:
        elapsed = max(self.last_end - measure_from, 1e-9)
        latencies = sorted(self.latencies)

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
            "setup": setup,
            "calls": len(latencies),
            "errors": self.errors,
            "firstError": self.first_error,
            "elapsedS": elapsed,
            "statesPerSec": len(latencies) / elapsed,
            "p50Ms": percentile(0.5),
            "p99Ms": percentile(0.99),
            "meanMs": 1000 * sum(latencies) / len(latencies) if latencies else None,
            "tag": args.tag,
        }


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:300]


class Profiles:
    """cProfile of each measuring thread (--cprofile), merged and written per case."""

    def __init__(self, path: Optional[str], case: str):
        self.path, self.case, self.done = path, case, []

    def start(self) -> Optional[cProfile.Profile]:
        if not self.path:
            return None
        profile = cProfile.Profile()
        profile.enable()
        return profile

    def stop(self, profile: Optional[cProfile.Profile]) -> None:
        if profile is not None:
            profile.disable()
            self.done.append(profile)

    def write(self) -> None:
        if not self.done:
            return
        stats = pstats.Stats(self.done[0])
        for profile in self.done[1:]:
            stats.add(profile)
        base = f"{self.path}.{self.case.replace(':', '-')}"
        os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
        stats.dump_stats(f"{base}.pstats")
        text = io.StringIO()
        pstats.Stats(f"{base}.pstats", stream=text).sort_stats("tottime").print_stats(30)
        with open(f"{base}.txt", "w") as out:
            out.write(text.getvalue())


def measure_case(args: argparse.Namespace, side: Side, operation: str, threads: int, setup: str, state: State) -> dict:
    persisters = side.for_threads(threads, setup)
    calls = [
        operation_for(persisters[thread], operation, f"{operation}-{threads}-{setup}-{thread}", args, state, thread)
        for thread in range(threads)
    ]
    tally = Tally()
    profiles = Profiles(args.cprofile, f"{args.side}-{args.db}-{operation}-{threads}")
    barrier = threading.Barrier(threads + 1)
    window = {}

    def run_lane(thread: int) -> None:
        call, check = calls[thread]
        barrier.wait()
        lane, stop_at = Lane(window["from"]), window["stop"]
        profile = profiles.start()
        while (began := time.perf_counter()) < stop_at:
            try:
                check(call())
            except Exception as error:  # counted and reported; the run goes on
                lane.failed(began, error)
                time.sleep(0.001)
            else:
                lane.succeeded(began)
        profiles.stop(profile)
        tally.add(lane)

    workers = [threading.Thread(target=run_lane, args=(thread,), daemon=True) for thread in range(threads)]
    for worker in workers:
        worker.start()
    now = time.perf_counter()
    window["from"] = now + args.warmup_s
    window["stop"] = window["from"] + args.measure_s
    barrier.wait()
    for worker in workers:
        worker.join()
    side.close()
    profiles.write()
    return tally.line(args, operation, threads, "shared" if args.side == "client" else setup, window["from"])


def measure_case_async(args: argparse.Namespace, operation: str, tasks: int, state: State) -> dict:
    """`tasks` asyncio tasks sharing one AsyncGrpcStatePersister, in a closed loop."""
    from burr_grpc_persister import AsyncGrpcStatePersister

    host, port = args.address.rsplit(":", 1)
    tally = Tally()
    profiles = Profiles(args.cprofile, f"{args.side}-{args.db}-{operation}-{tasks}")

    async def run() -> float:
        persister = AsyncGrpcStatePersister.from_values(host=host, port=int(port))
        calls = [
            operation_for(persister, operation, f"{operation}-{tasks}-async-{task}", args, state, task) for task in range(tasks)
        ]
        measure_from = time.perf_counter() + args.warmup_s
        stop_at = measure_from + args.measure_s

        async def run_lane(task: int) -> None:
            call, check = calls[task]
            lane = Lane(measure_from)
            while (began := time.perf_counter()) < stop_at:
                try:
                    check(await call())
                except Exception as error:  # counted and reported; the run goes on
                    lane.failed(began, error)
                    await asyncio.sleep(0.001)
                else:
                    lane.succeeded(began)
            tally.add(lane)

        profile = profiles.start()
        try:
            await asyncio.gather(*(run_lane(task) for task in range(tasks)))
        finally:
            profiles.stop(profile)
            await persister.cleanup()
        return measure_from

    measure_from = asyncio.run(run())
    profiles.write()
    return tally.line(args, operation, tasks, "shared", measure_from)


def measure(args: argparse.Namespace) -> None:
    state = realistic_state()
    side = Side(args)
    for case in args.cases.split(","):
        parts = case.split(":")
        operation, threads = parts[0], int(parts[1])
        setup = parts[2] if len(parts) > 2 else ("shared" if threads == 1 else BURR_SETUPS[args.db])
        if args.side == "async-client":
            emit(measure_case_async(args, operation, threads, state))
        else:
            emit(measure_case(args, side, operation, threads, setup, state))


class EchoClient:
    """A raw request-response over one TCP connection to bench/echo-server.ts: a frame of
    [request length, answer length] then the request; the server answers that many bytes."""

    def __init__(self, address: str):
        host, port = address.rsplit(":", 1)
        self.socket = socket.create_connection((host, int(port)))
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, frame: bytes, answer: memoryview) -> None:
        self.socket.sendall(frame)
        got = 0
        while got < len(answer):
            n = self.socket.recv_into(answer[got:])
            if n == 0:
                raise ConnectionError("the echo server closed the connection")
            got += n

    @staticmethod
    def frame(request_bytes: int, answer_bytes: int) -> bytes:
        return struct.pack(">II", request_bytes, answer_bytes) + os.urandom(request_bytes)

    def close(self) -> None:
        self.socket.close()


def hop(args: argparse.Namespace) -> None:
    """The sync and async clients' Save and Load against the no-op server, one call at a time,
    in blocks alternating with raw TCP request-responses of the messages' sizes."""
    from burr_grpc_persister import AsyncGrpcStatePersister, GrpcStatePersister
    from burr_grpc_persister import _wire
    from burr_grpc_persister._gen import state_persister_pb2 as pb
    from burr_grpc_persister._gen.state_persister_pb2_grpc import StatePersisterStub
    from google.protobuf.timestamp_pb2 import Timestamp

    host, port = args.address.rsplit(":", 1)
    state = realistic_state()
    persister = GrpcStatePersister.from_values(host=host, port=int(port))
    save_request = _wire.save_request(SAVE_PARTITION, "hop-app", 3, POSITIONS[0], state, "completed", {}, "save")
    load_request = _wire.load_request(LOAD_PARTITION, app_id(0), None, "load")
    with grpc_channel(args.address) as channel:
        load_response = StatePersisterStub(channel).Load(load_request)
    saved = pb.SaveResponse(created_at=Timestamp(seconds=1_700_000_000, nanos=123_456_789))
    call_id = 123_456  # a pipeline's call ids grow; a mid-sized one
    sizes = {
        "save": (pb.PipelineRequest(call_id=call_id, save=save_request).ByteSize(), pb.PipelineResponse(call_id=call_id, save=saved).ByteSize()),
        "load": (pb.PipelineRequest(call_id=call_id, load=load_request).ByteSize(), pb.PipelineResponse(call_id=call_id, load=load_response).ByteSize()),
    }
    echo = EchoClient(args.echo)
    frames = {operation: EchoClient.frame(*size) for operation, size in sizes.items()}
    answers = {operation: memoryview(bytearray(size[1])) for operation, size in sizes.items()}
    sequence = iter(range(10**12))

    def client(operation: str) -> None:
        if operation == "save":
            persister.save(SAVE_PARTITION, "hop-app", next(sequence), POSITIONS[0], state, "completed")
        elif persister.load(LOAD_PARTITION, app_id(0)) is None:
            raise LookupError("the no-op server answered no state")

    async def run() -> dict:
        aio = AsyncGrpcStatePersister.from_values(host=host, port=int(port))

        async def async_client(operation: str) -> None:
            if operation == "save":
                await aio.save(SAVE_PARTITION, "hop-app-async", next(sequence), POSITIONS[0], state, "completed")
            elif await aio.load(LOAD_PARTITION, app_id(0)) is None:
                raise LookupError("the no-op server answered no state")

        times: dict = {(operation, who): [] for operation in sizes for who in ("client", "async", "echo")}
        block = 100
        began = time.perf_counter()
        warm_until, stop_at = began + args.warmup_s, began + args.warmup_s + args.measure_s
        # At least one measured block, however short the timing (the smoke run).
        while time.perf_counter() < stop_at or not times[("load", "echo")]:
            measured = time.perf_counter() >= warm_until
            for operation in sizes:
                for who in ("client", "async", "echo"):
                    mine = times[(operation, who)]
                    for _ in range(block):
                        start = time.perf_counter()
                        if who == "client":
                            client(operation)
                        elif who == "async":
                            await async_client(operation)
                        else:
                            echo.call(frames[operation], answers[operation])
                        if measured:
                            mine.append(time.perf_counter() - start)
        await aio.cleanup()
        return times

    try:
        times = asyncio.run(run())
    finally:
        persister.cleanup()
        echo.close()
    for operation, (request_bytes, answer_bytes) in sizes.items():
        def p50(who: str) -> Optional[float]:
            values = sorted(times[(operation, who)])
            return 1000 * values[len(values) // 2] if values else None

        emit(
            {
                "kind": "hop",
                "operation": operation,
                "requestBytes": request_bytes,
                "answerBytes": answer_bytes,
                "calls": len(times[(operation, "client")]),
                "clientP50Ms": p50("client"),
                "asyncClientP50Ms": p50("async"),
                "echoP50Ms": p50("echo"),
            }
        )


def grpc_channel(address: str):
    import grpc

    return grpc.insecure_channel(address)


def info(args: argparse.Namespace) -> None:
    import importlib.metadata as metadata
    import sqlite3

    import burr_grpc_persister

    versions = {}
    for package in ("apache-burr", "grpcio", "protobuf", "psycopg2-binary", "redis"):
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
    parser.add_argument("command", choices=["info", "preload", "measure", "hop"])
    parser.add_argument("--side", choices=["burr", "client", "async-client"])
    parser.add_argument("--db", choices=["postgres", "redis", "sqlite"])
    parser.add_argument("--address", help="the server, host:port (client sides; hop: the no-op server)")
    parser.add_argument("--echo", help="bench/echo-server.ts, host:port (hop)")
    parser.add_argument("--redis-url", help="redis://host:port[/db] (Burr side)")
    parser.add_argument("--redis-namespace", help="namespace of Burr's keys (Burr side)")
    parser.add_argument("--cprofile", help="measure: cProfile the measuring threads into FILE.<case>.pstats/.txt")
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
        {"info": info, "preload": preload, "measure": measure, "hop": hop}[args.command](args)
    except Exception:
        traceback.print_exc()
        sys.exit(1)


if __name__ == "__main__":
    main()
