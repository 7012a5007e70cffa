"""Apache Burr state persisters backed by the burr.state.v1.StatePersister gRPC service."""

import importlib.metadata as _metadata

from ._wire import ALL_PARTITIONS, DeletedPartition, StepData
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

try:
    #: The installed distribution's version: the repository's (and the contract's) version.
    __version__ = _metadata.version("burr-grpc-persister")
except _metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "ALL_PARTITIONS",
    "AlreadyExistsError",
    "AsyncGrpcStatePersister",
    "AuthenticationError",
    "ConnectionSettings",
    "DeadlineExceededError",
    "DeletedPartition",
    "GrpcStatePersister",
    "InvalidArgumentError",
    "NotInitializedError",
    "PermissionDeniedError",
    "PersisterError",
    "StateTooLargeError",
    "StepData",
    "UnavailableError",
]
