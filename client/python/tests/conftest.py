"""Fixtures: the real TypeScript server on an ephemeral port, and persisters pointed at it."""

from __future__ import annotations

import socket
import sysconfig
import uuid
from pathlib import Path

import grpc
import pytest

import burr_grpc_persister
from burr_grpc_persister import GrpcStatePersister
from burr_grpc_persister._gen.state_persister_pb2_grpc import StatePersisterStub
from server_process import ServerProcess

#: client/python/src: the tests must not import the package from here (run-tests.sh installs the wheel).
SOURCE_TREE = Path(__file__).resolve().parents[1] / "src"


def installed_location_problem() -> str | None:
    """Why the imported burr_grpc_persister is not the installed one, or None when it is."""
    location = Path(burr_grpc_persister.__file__).resolve()
    if location.is_relative_to(SOURCE_TREE):
        return f"burr_grpc_persister was imported from the source tree ({location})"
    site_packages = {Path(sysconfig.get_path(name)).resolve() for name in ("purelib", "platlib")}
    if not any(location.is_relative_to(folder) for folder in site_packages):
        return f"burr_grpc_persister was imported from {location}, not from site-packages ({', '.join(map(str, sorted(site_packages)))})"
    return None


def pytest_configure(config):
    problem = installed_location_problem()
    if problem:
        raise pytest.UsageError(
            f"{problem}: the tests run against the installed wheel; use client/python/run-tests.sh"
        )


#: The shared server's largest message: small enough to test the state size limit cheaply.
MAX_MESSAGE_BYTES = 1024 * 1024


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server for the session, over SQLite; tests keep apart by partition and app id."""
    store = tmp_path_factory.mktemp("store") / "state.db"
    process = ServerProcess(f"sqlite:{store}", extra_args=("--max-message-bytes", str(MAX_MESSAGE_BYTES)))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def own_server(tmp_path):
    """A server of the test's own, for tests that stop or restart it. Call .start() first."""
    process = ServerProcess(f"sqlite:{tmp_path / 'state.db'}")
    yield process
    process.stop()


@pytest.fixture
def persister(server):
    with GrpcStatePersister.from_values("127.0.0.1", server.port) as persister:
        yield persister


@pytest.fixture
def raw_stub(server):
    """The generated stub, no persister in between: sees exactly what the server stores."""
    with grpc.insecure_channel(server.target) as channel:
        yield StatePersisterStub(channel)


@pytest.fixture
def partition():
    return f"partition-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
