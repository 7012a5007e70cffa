"""Apache Burr state persisters backed by the burr.state.v1.StatePersister gRPC service."""

from .async_persister import AsyncGrpcStatePersister
from .errors import (
    AlreadyExistsError,
    AuthenticationError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotInitializedError,
    PermissionDeniedError,
    PersisterError,
    StateTooLargeError,
    UnavailableError,
)
from .persister import GrpcStatePersister
from .settings import ConnectionSettings

__all__ = [
    "AlreadyExistsError",
    "AsyncGrpcStatePersister",
    "AuthenticationError",
    "ConnectionSettings",
    "DeadlineExceededError",
    "GrpcStatePersister",
    "InvalidArgumentError",
    "NotInitializedError",
    "PermissionDeniedError",
    "PersisterError",
    "StateTooLargeError",
    "UnavailableError",
]
