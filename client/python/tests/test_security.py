"""TLS, mutual TLS and partition-scoped bearer tokens, against the real server started with
--tls-cert, --tls-key, --tls-client-ca and --auth-file."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from burr.core import State

from burr_grpc_persister import (
    AsyncGrpcStatePersister,
    AuthenticationError,
    GrpcStatePersister,
    PermissionDeniedError,
    UnavailableError,
)
from certificates import make_pki
from helpers import new_app_id
from server_process import ServerProcess

WRITER_TOKEN = "writer-token-0123456789abcdef"
READER_TOKEN = "reader-token-0123456789abcdef"
TOKENS = {
    "tokens": [
        {"name": "chat", "token": WRITER_TOKEN, "partitions": ["user-*", ""], "access": "read-write"},
        {"name": "audit", "token": READER_TOKEN, "partitions": ["*"], "access": "read"},
    ]
}


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory, pki):
    """A server that requires a client certificate from the test CA and a bearer token."""
    directory = tmp_path_factory.mktemp("secure")
    files = {
        "server.pem": pki.server.certificate,
        "server.key": pki.server.private_key,
        "ca.pem": pki.authority.certificate,
        "tokens.json": json.dumps(TOKENS).encode(),
    }
    for name, content in files.items():
        (directory / name).write_bytes(content)
    process = ServerProcess(
        f"sqlite:{directory / 'state.db'}",
        extra_args=(
            "--tls-cert", str(directory / "server.pem"),
            "--tls-key", str(directory / "server.key"),
            "--tls-client-ca", str(directory / "ca.pem"),
            "--auth-file", str(directory / "tokens.json"),
        ),
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def user_partition():
    """A partition inside the writer token's ``user-*``."""
    return f"user-{uuid.uuid4().hex[:12]}"


def tls_settings(pki, **overrides) -> dict:
    settings = dict(
        root_certificates=pki.authority.certificate,
        certificate_chain=pki.client.certificate,
        private_key=pki.client.private_key,
        token=WRITER_TOKEN,
        retry_attempts=1,
    )
    settings.update(overrides)
    return settings


def connect(secure_server, pki, **overrides) -> GrpcStatePersister:
    return GrpcStatePersister.from_values("localhost", secure_server.port, **tls_settings(pki, **overrides))


def test_mutual_tls_and_token_reach_the_server(secure_server, pki, user_partition):
    app_id = new_app_id()
    with connect(secure_server, pki) as persister:
        assert persister.is_initialized()
        persister.save(user_partition, app_id, 0, "step", State({"secret": "kept"}), "completed")
        assert persister.load(user_partition, app_id)["state"]["secret"] == "kept"
        assert persister.list_app_ids(user_partition) == [app_id]


def test_the_async_persister_over_mutual_tls_with_a_token(secure_server, pki, user_partition):
    async def scenario():
        async with AsyncGrpcStatePersister.from_values(
            "localhost", secure_server.port, **tls_settings(pki)
        ) as persister:
            await persister.save(user_partition, "app", 0, "step", State({"n": 1}), "completed")
            loaded = await persister.load(user_partition, "app")
            return loaded["state"]["n"], await persister.list_app_ids(user_partition)

    assert asyncio.run(scenario()) == (1, ["app"])


def test_certificates_from_files_in_a_config_dict(secure_server, pki, user_partition, tmp_path):
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
        "port": secure_server.port,
        "root_certificates": str(paths["ca"]),
        "certificate_chain": str(paths["cert"]),
        "private_key": paths["key"],
        "token": WRITER_TOKEN,
        "deadline_seconds": 5,
    }
    with GrpcStatePersister.from_config(config) as persister:
        assert persister.load(user_partition, new_app_id()) is None


@pytest.mark.parametrize("token", [None, "not-a-token-the-server-knows"])
def test_a_missing_or_unknown_token_is_an_authentication_error(secure_server, pki, user_partition, token):
    with connect(secure_server, pki, token=token) as persister:
        with pytest.raises(AuthenticationError, match="bearer token") as raised:
            persister.load(user_partition, "app")
    assert isinstance(raised.value, PermissionError) and raised.value.code.name == "UNAUTHENTICATED"
    assert "the persister's token setting" in str(raised.value)


def test_the_async_persister_without_a_token_gets_an_authentication_error(secure_server, pki, user_partition):
    async def scenario():
        async with AsyncGrpcStatePersister.from_values(
            "localhost", secure_server.port, **tls_settings(pki, token=None)
        ) as persister:
            await persister.list_app_ids(user_partition)

    with pytest.raises(AuthenticationError, match=r"list_app_ids\(partition_key='user-"):
        asyncio.run(scenario())


def test_the_async_persister_without_a_token_is_refused_every_pipelined_call(
    secure_server, pki, user_partition
):
    async def scenario():
        async with AsyncGrpcStatePersister.from_values(
            "localhost", secure_server.port, **tls_settings(pki, token=None)
        ) as persister:
            saves = [
                persister.save(user_partition, f"app-{n}", 0, "step", State(), "completed") for n in range(4)
            ]
            loads = [persister.load(user_partition, f"app-{n}") for n in range(4)]
            return await asyncio.gather(*saves, *loads, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(outcome, AuthenticationError) for outcome in outcomes), outcomes


def test_a_partition_outside_the_token_is_denied_on_every_call(secure_server, pki):
    with connect(secure_server, pki) as persister:
        denied = 'token "chat" may not use partition "team-1"'
        with pytest.raises(PermissionDeniedError, match=denied) as raised:
            persister.save("team-1", "app", 0, "step", State(), "completed")
        assert isinstance(raised.value, PermissionError) and raised.value.code.name == "PERMISSION_DENIED"
        with pytest.raises(PermissionDeniedError, match=r"load\(partition_key='team-1', app_id='app'"):
            persister.load("team-1", "app")
        with pytest.raises(PermissionDeniedError, match=r"load\(partition_key='team-1', app_id=None"):
            persister.load("team-1", None)
        with pytest.raises(PermissionDeniedError, match=r"list_app_ids\(partition_key='team-1'\)"):
            persister.list_app_ids("team-1")


def test_the_async_persister_is_denied_a_partition_outside_the_token(secure_server, pki):
    async def scenario():
        async with AsyncGrpcStatePersister.from_values(
            "localhost", secure_server.port, **tls_settings(pki)
        ) as persister:
            await persister.list_app_ids("team-1")

    with pytest.raises(PermissionDeniedError, match="team-1"):
        asyncio.run(scenario())


def test_a_read_only_token_loads_and_lists_but_cannot_save(secure_server, pki, user_partition):
    app_id = new_app_id()
    with connect(secure_server, pki) as writer:
        writer.save(user_partition, app_id, 0, "step", State({"n": 0}), "completed")

    with connect(secure_server, pki, token=READER_TOKEN) as reader:
        assert reader.load(user_partition, app_id)["state"]["n"] == 0
        assert reader.list_app_ids(user_partition) == [app_id]
        with pytest.raises(PermissionDeniedError, match='token "audit" is read-only'):
            reader.save(user_partition, app_id, 1, "step", State({"n": 1}), "completed")
        with pytest.raises(PermissionDeniedError, match="read-only"):
            reader.initialize()
        assert reader.load(user_partition, app_id)["sequence_id"] == 0


def test_a_missing_client_certificate_is_refused_saying_so(secure_server, pki):
    settings = tls_settings(pki, certificate_chain=None, private_key=None, deadline_seconds=5)
    with GrpcStatePersister.from_values("localhost", secure_server.port, **settings) as persister:
        with pytest.raises(
            UnavailableError,
            match=rf"localhost:{secure_server.port} is unavailable .* no client certificate was sent: "
            "if the server requires mutual TLS, set certificate_chain and private_key",
        ):
            persister.load("", "app")


def test_a_server_certificate_from_another_authority_is_refused_saying_so(secure_server, pki):
    stranger = make_pki().authority.certificate
    settings = tls_settings(pki, root_certificates=stranger, deadline_seconds=5)
    with GrpcStatePersister.from_values("localhost", secure_server.port, **settings) as persister:
        with pytest.raises(UnavailableError, match="the TLS connection failed: check that root_certificates"):
            persister.load("", "app")


def test_half_a_client_certificate_is_a_setup_error(pki):
    with pytest.raises(ValueError, match="certificate_chain and private_key"):
        GrpcStatePersister.from_values("localhost", 1, certificate_chain=pki.client.certificate)
