"""Where the server is and how to call it: address, TLS, token, deadlines, retries.

Settings hold only plain values (certificates as PEM bytes or file paths, never open channels),
so a persister that carries them pickles and copies cleanly.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import grpc

#: PEM contents as bytes, or the path of a PEM file.
PemSource = Union[bytes, str, os.PathLike, None]


def _read_pem(source: PemSource) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


@dataclass(frozen=True)
class ConnectionSettings:
    """How a persister reaches the server. ``from_values`` and ``from_config`` take the same names."""

    host: str
    port: int
    #: Use TLS; implied by any of the certificate settings below. Without ``root_certificates``
    #: the system's trusted roots verify the server.
    tls: bool = False
    root_certificates: PemSource = None
    #: Client certificate and key, for servers that ask for mutual TLS.
    certificate_chain: PemSource = None
    private_key: PemSource = field(default=None, repr=False)
    #: Sent as ``authorization: Bearer <token>`` on every call.
    token: str | None = field(default=None, repr=False)
    #: Deadline of each unary call (save, load, initialize, is_initialized).
    deadline_seconds: float = 10.0
    #: Deadline of a whole list_app_ids or list_steps stream (for list_steps, including the time
    #: the caller spends between the steps it is given).
    list_deadline_seconds: float = 60.0
    #: Deadline of each delete_app, delete_partition and prune (they delete in batches, and may
    #: take long on a large store). These are never retried.
    delete_deadline_seconds: float = 300.0
    #: Tries in all for calls that are safe to repeat, when the server answers UNAVAILABLE.
    #: Save is never retried: it may have been stored before the connection broke.
    retry_attempts: int = 5
    retry_initial_backoff_seconds: float = 0.1
    retry_max_backoff_seconds: float = 2.0
    #: Extra gRPC channel arguments, e.g. {"grpc.ssl_target_name_override": "persister.internal"}.
    channel_options: Any = ()

    def __post_init__(self):
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"port must be an integer from 1 to 65535, got {self.port!r}")
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("certificate_chain and private_key go together: give both or neither")
        if self.retry_attempts < 1:
            raise ValueError(f"retry_attempts must be at least 1, got {self.retry_attempts}")
        options = self.channel_options
        if isinstance(options, Mapping):
            options = options.items()
        object.__setattr__(self, "channel_options", tuple((str(k), v) for k, v in options))

    @property
    def target(self) -> str:
        """host:port as gRPC dials it (IPv6 literals bracketed)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.root_certificates is not None or self.certificate_chain is not None

    def open_channel(self) -> grpc.Channel:
        if self.uses_tls:
            return grpc.secure_channel(self.target, self._credentials(), self._options())
        return grpc.insecure_channel(self.target, self._options())

    def open_aio_channel(self) -> grpc.aio.Channel:
        if self.uses_tls:
            return grpc.aio.secure_channel(self.target, self._credentials(), self._options())
        return grpc.aio.insecure_channel(self.target, self._options())

    def _credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read_pem(self.root_certificates),
            private_key=_read_pem(self.private_key),
            certificate_chain=_read_pem(self.certificate_chain),
        )

    def _options(self) -> list[tuple[str, Any]]:
        options = {
            # The server bounds what it sends; gRPC would otherwise refuse answers over 4 MiB.
            "grpc.max_receive_message_length": -1,
            # gRPC's own reconnect backoff grows to 2 minutes while a server is down; keep it
            # short so calls succeed again within seconds once the server is back.
            "grpc.initial_reconnect_backoff_ms": 200,
            "grpc.max_reconnect_backoff_ms": 5000,
        }
        options.update(self.channel_options)
        return list(options.items())

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def attempts(self, idempotent: bool) -> int:
        return self.retry_attempts if idempotent else 1

    def backoff_seconds(self, attempt: int) -> float:
        """The pause after failed try number ``attempt``: exponential, capped, half of it jittered."""
        ceiling = min(self.retry_max_backoff_seconds, self.retry_initial_backoff_seconds * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)
