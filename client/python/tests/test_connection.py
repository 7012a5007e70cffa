"""Reaching the server: TLS and bearer token, deadlines, retries, an unreachable or restarting server."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from burr.core import State

from burr_grpc_persister import (
    AsyncGrpcStatePersister,
    AuthenticationError,
    DeadlineExceededError,
    GrpcStatePersister,
    UnavailableError,
)
from certificates import make_pki
from helpers import new_app_id
from tls_proxy import TlsProxy

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture
def tls_proxy(server, pki):
    proxy = TlsProxy(
        server.target,
        certificate=pki.server.certificate,
        private_key=pki.server.private_key,
        client_ca=pki.authority.certificate,
        token=TOKEN,
    )
    yield proxy
    proxy.stop()


def tls_settings(pki, **overrides) -> dict:
    settings = dict(
        root_certificates=pki.authority.certificate,
        certificate_chain=pki.client.certificate,
        private_key=pki.client.private_key,
        token=TOKEN,
    )
    settings.update(overrides)
    return settings


def test_mutual_tls_and_token_reach_the_server(tls_proxy, pki, partition):
    app_id = new_app_id()
    with GrpcStatePersister.from_values("localhost", tls_proxy.port, **tls_settings(pki)) as persister:
        assert persister.is_initialized()
        persister.save(partition, app_id, 0, "step", State({"secret": "kept"}), "completed")
        assert persister.load(partition, app_id)["state"]["secret"] == "kept"
        assert persister.list_app_ids(partition) == [app_id]


def test_certificates_from_files_in_a_config_dict(tls_proxy, pki, partition, tmp_path):
    paths = {}
    for name, pem in [
        ("ca", pki.authority.certificate),
        ("cert", pki.client.certificate),
        ("key", pki.client.private_key),
    ]:
        paths[name] = tmp_path / f"{name}.pem"
        paths[name].write_bytes(pem)
    config = {
        "host": "127.0.0.1",
        "port": tls_proxy.port,
        "root_certificates": str(paths["ca"]),
        "certificate_chain": str(paths["cert"]),
        "private_key": paths["key"],
        "token": TOKEN,
        "deadline_seconds": 5,
    }
    with GrpcStatePersister.from_config(config) as persister:
        assert persister.load(partition, new_app_id()) is None


def test_async_persister_over_tls(tls_proxy, pki, partition):
    async def scenario():
        async with AsyncGrpcStatePersister.from_values(
            "localhost", tls_proxy.port, **tls_settings(pki)
        ) as persister:
            await persister.save(partition, "app", 0, "step", State({"n": 1}), "completed")
            return (await persister.load(partition, "app"))["state"]["n"]

    assert asyncio.run(scenario()) == 1


def test_a_missing_token_is_refused(tls_proxy, pki, partition):
    with GrpcStatePersister.from_values(
        "localhost", tls_proxy.port, **tls_settings(pki, token=None)
    ) as persister:
        with pytest.raises(AuthenticationError, match="bearer token") as raised:
            persister.load(partition, "app")
    assert isinstance(raised.value, PermissionError) and raised.value.code.name == "UNAUTHENTICATED"


def test_a_missing_client_certificate_fails_naming_the_server(tls_proxy, pki):
    settings = tls_settings(pki, certificate_chain=None, private_key=None, retry_attempts=1)
    with GrpcStatePersister.from_values("localhost", tls_proxy.port, **settings) as persister:
        with pytest.raises(UnavailableError, match=f"localhost:{tls_proxy.port}"):
            persister.load("", "app")


def test_half_a_client_certificate_is_a_setup_error(pki):
    with pytest.raises(ValueError, match="certificate_chain and private_key"):
        GrpcStatePersister.from_values("localhost", 1, certificate_chain=pki.client.certificate)


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
