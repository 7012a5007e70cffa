"""Errors a Burr application can act on, one class per gRPC status the service returns.

Each class also derives from the built-in exception Burr's own persisters raise in the same
situation (a duplicate save is a ``ValueError`` in Burr's Redis persister, a missing table a
``RuntimeError`` in its SQLite one), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

import re

import grpc

from .settings import ConnectionSettings


class PersisterError(Exception):
    """Any failure of a call to the state persister service; ``code`` is the gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    def __reduce__(self):
        # Keeps the code when the error crosses a process boundary (Ray, multiprocessing).
        return type(self), (self.args[0], self.code)


class InvalidArgumentError(PersisterError, ValueError):
    """A field is empty, negative, too long or not encodable; the message names it."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class AlreadyExistsError(PersisterError, ValueError):
    """This (partition_key, app_id, sequence_id, position) is already saved; the stored one is intact."""

    code = grpc.StatusCode.ALREADY_EXISTS


class StateTooLargeError(PersisterError, ValueError):
    """The serialized state is larger than the server accepts."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class NotInitializedError(PersisterError, RuntimeError):
    """The store has no tables yet: call ``initialize()`` (or start the server with --init)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class UnavailableError(PersisterError, ConnectionError):
    """The server, or the database behind it, cannot be reached."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(PersisterError, TimeoutError):
    """The call did not finish within its deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class AuthenticationError(PersisterError, PermissionError):
    """The server wants a bearer token it did not get, or does not know the one sent."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(PersisterError, PermissionError):
    """The token is valid but may not do this: a partition outside its scope, or a save
    (or initialize) with a read-only token. The message names the token and the partition."""

    code = grpc.StatusCode.PERMISSION_DENIED


_by_code = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        AlreadyExistsError,
        StateTooLargeError,
        NotInitializedError,
        UnavailableError,
        DeadlineExceededError,
        AuthenticationError,
        PermissionDeniedError,
    )
}


#: What to change when the server refuses the caller; the server's own text says why.
_remedies = {
    grpc.StatusCode.UNAUTHENTICATED: "check the persister's token setting",
    grpc.StatusCode.PERMISSION_DENIED: "the token's partitions and access are set in the server's auth file",
}


def error_from_rpc(
    error: grpc.RpcError, call: str, settings: ConnectionSettings, attempts: int
) -> PersisterError:
    """The exception for a failed call: what was called, where, and what the server said."""
    code, target = error.code(), settings.target
    details = error.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        message = f"{call}: the Burr state persister at {target} is unavailable ({tries}): {details}"
        if settings.uses_tls and _TLS_FAILURE.search(details):
            message += f" ({_tls_remedy(settings)})"
    elif code in _remedies:
        message = f"{call} was refused by {target}: {details} ({code.name}; {_remedies[code]})"
    elif code == grpc.StatusCode.UNIMPLEMENTED:
        message = (
            f"{call} failed at {target}: {details} "
            "(UNIMPLEMENTED; the server is older than this call: upgrade it)"
        )
    else:
        message = f"{call} failed at {target}: {details} ({code.name})"
    return _by_code.get(code, PersisterError)(message, code)


#: How gRPC's UNAVAILABLE details look when the TLS handshake, not the network, failed.
_TLS_FAILURE = re.compile(r"ssl|tsi_|handshake|certificate", re.IGNORECASE)


def _tls_remedy(settings: ConnectionSettings) -> str:
    # gRPC reports a server's refusal of the client certificate only as a broken connection.
    if settings.certificate_chain is None:
        return (
            "the TLS connection failed and no client certificate was sent: if the server requires "
            "mutual TLS, set certificate_chain and private_key; else check root_certificates"
        )
    return (
        "the TLS connection failed: check that root_certificates holds the server's CA and that "
        "the server's client CA signed certificate_chain"
    )
