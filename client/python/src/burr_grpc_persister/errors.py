"""Errors a Burr application can act on, one class per gRPC status the service returns.

Each class also derives from the built-in exception Burr's own persisters raise in the same
situation (a duplicate save is a ``ValueError`` in Burr's Redis persister, a missing table a
``RuntimeError`` in its SQLite one), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

import grpc


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
    """The server wants credentials it did not get: a missing or wrong bearer token."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(PersisterError, PermissionError):
    """The credentials are valid but may not do this (a read-only token, another partition)."""

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


def error_from_rpc(error: grpc.RpcError, call: str, target: str, attempts: int) -> PersisterError:
    """The exception for a failed call: what was called, where, and what the server said."""
    code = error.code()
    details = error.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        message = f"{call}: the Burr state persister at {target} is unavailable ({tries}): {details}"
    else:
        message = f"{call} failed at {target}: {details} ({code.name})"
    return _by_code.get(code, PersisterError)(message, code)
