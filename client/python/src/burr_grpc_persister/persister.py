"""GrpcStatePersister: Burr's synchronous persister interface, served by the gRPC StatePersister."""

from __future__ import annotations

import os
import threading
import time
import weakref
from datetime import datetime
from typing import Callable, Iterator, Optional, TypeVar

import grpc
from burr.core.persistence import BaseStatePersister, PersistedStateData
from burr.core.state import State

from . import _wire
from ._common import PersisterBase
from ._gen import state_persister_pb2 as pb
from ._gen.state_persister_pb2_grpc import StatePersisterStub
from ._pipeline import UNARY_FROM_BYTES, CallPipeline
from ._wire import ALL_PARTITIONS, DeletedPartition, StepData
from .errors import error_from_rpc
from .settings import ConnectionSettings

T = TypeVar("T")

#: Every live instance, so that a forked child can let go of what it inherited.
_instances: weakref.WeakSet[GrpcStatePersister] = weakref.WeakSet()


class GrpcStatePersister(BaseStatePersister, PersisterBase):
    """Saves and loads Burr application state through a StatePersister server.

    A drop-in for Burr's own persisters::

        persister = GrpcStatePersister.from_values(host="127.0.0.1", port=50051)
        app = ApplicationBuilder()...with_state_persister(persister).build()

    One instance is safe to share between threads: their saves and loads share one Pipeline
    stream (unary calls when the server has none). The channel opens on the first call; copies,
    unpickled instances and forked children open their own.
    """

    def __init__(self, settings: ConnectionSettings, serde_kwargs: Optional[dict] = None):
        """
        :param settings: where the server is and how to call it.
        :param serde_kwargs: kwargs for ``State.serialize`` / ``State.deserialize``.
        """
        self.settings = settings
        self.serde_kwargs = serde_kwargs or {}
        self._disconnect()
        _instances.add(self)

    @classmethod
    def from_values(
        cls, host: str, port: int, serde_kwargs: Optional[dict] = None, **connection
    ) -> GrpcStatePersister:
        """Creates a persister for the server at host:port.

        :param connection: any other :class:`ConnectionSettings` field (``tls``, ``root_certificates``,
            ``certificate_chain``, ``private_key``, ``token``, ``deadline_seconds``, ``retry_attempts``, ...).
        """
        return cls(ConnectionSettings(host=host, port=port, **connection), serde_kwargs)

    def initialize(self):
        """Creates the server's tables if needed. Idempotent."""
        self._invoke(
            "initialize()",
            lambda stub: stub.Initialize(pb.InitializeRequest(), **self._unary_options()),
            idempotent=True,
        )

    def is_initialized(self) -> bool:
        response = self._invoke(
            "is_initialized()",
            lambda stub: stub.IsInitialized(pb.IsInitializedRequest(), **self._unary_options()),
            idempotent=True,
        )
        return response.initialized

    def save(
        self,
        partition_key: Optional[str],
        app_id: str,
        sequence_id: int,
        position: str,
        state: State,
        status: str,
        **kwargs,
    ):
        """Saves one step. Raises AlreadyExistsError if this (partition_key, app_id, sequence_id,
        position) is already saved; the stored one is left intact."""
        call = _wire.describe(
            "save", partition_key=partition_key, app_id=app_id, sequence_id=sequence_id, position=position
        )
        request = _wire.save_request(
            partition_key, app_id, sequence_id, position, state, status, self.serde_kwargs, call
        )
        large = len(request.state) >= UNARY_FROM_BYTES
        self._invoke(call, lambda stub: self._pipelined(request, stub.Save, large), idempotent=False)

    def load(
        self,
        partition_key: Optional[str],
        app_id: Optional[str],
        sequence_id: Optional[int] = None,
        **kwargs,
    ) -> Optional[PersistedStateData]:
        """Loads a step: that ``sequence_id``, else the app's highest, else (no ``app_id``) the
        partition's most recently written. None when nothing matches."""
        call = _wire.describe("load", partition_key=partition_key, app_id=app_id, sequence_id=sequence_id)
        request = _wire.load_request(partition_key, app_id, sequence_id, call)
        response = self._invoke(
            call, lambda stub: self._pipelined(request, stub.Load, False), idempotent=True
        )
        return _wire.persisted_state_data(response, self.serde_kwargs)

    def list_app_ids(self, partition_key: Optional[str], **kwargs) -> list[str]:
        """The partition's app ids, each once, most recently written first."""
        call = _wire.describe("list_app_ids", partition_key=partition_key)
        request = _wire.list_request(partition_key, call)

        def fetch(stub: StatePersisterStub) -> list[str]:
            chunks = stub.ListAppIds(request, **self._list_options())
            return [app_id for chunk in chunks for app_id in chunk.app_ids]

        return self._invoke(call, fetch, idempotent=True)

    def list_steps(
        self,
        partition_key: Optional[str],
        app_id: str,
        before_sequence_id: Optional[int] = None,
        limit: Optional[int] = None,
        include_state: bool = False,
    ) -> Iterator[StepData]:
        """The app's saved steps, newest first (sequence_id descending; of the steps that share a
        sequence_id, the one written last first), as a generator of dicts shaped like ``load``'s.

        :param before_sequence_id: only steps with a lower sequence_id (to page back: pass the last
            sequence_id you got; steps that share it are then all skipped).
        :param limit: at most this many steps; None or 0: all of them.
        :param include_state: also fetch and deserialize each step's ``state``; else it is None.

        The arguments are checked at once; the stream opens on the first ``next()``. An unknown app
        gives nothing. The stream is retried on UNAVAILABLE only until its first chunk arrives, and
        ``list_deadline_seconds`` bounds all of it, including the time spent between steps: to work
        slowly through a long history, take it in pages (``limit`` and ``before_sequence_id``).
        Stopping early (``break``, ``close()``) cancels the stream.
        """
        call = _wire.describe(
            "list_steps",
            partition_key=partition_key,
            app_id=app_id,
            before_sequence_id=before_sequence_id,
            limit=limit,
        )
        request = _wire.list_steps_request(
            partition_key, app_id, before_sequence_id, limit, include_state, call
        )
        return self._stream_steps(call, request)

    def delete_app(self, partition_key: Optional[str], app_id: str) -> int:
        """Deletes every step of the app; returns how many (0 for an unknown app). Afterwards the
        app is gone from ``load``, ``list_app_ids`` and ``list_steps``, and it can be saved again.
        Never retried (a save that landed after a lost delete must not be deleted by a second one)."""
        call = _wire.describe("delete_app", partition_key=partition_key, app_id=app_id)
        request = _wire.delete_app_request(partition_key, app_id, call)
        response = self._invoke(
            call, lambda stub: stub.DeleteApp(request, **self._delete_options()), idempotent=False
        )
        return response.steps_deleted

    def delete_partition(self, partition_key: Optional[str]) -> DeletedPartition:
        """Deletes every app of the partition (None or "": the default partition), and no other.
        Returns ``DeletedPartition(steps_deleted, apps_deleted)``, a named tuple. Never retried."""
        call = _wire.describe("delete_partition", partition_key=partition_key)
        request = _wire.delete_partition_request(partition_key, call)
        response = self._invoke(
            call, lambda stub: stub.DeletePartition(request, **self._delete_options()), idempotent=False
        )
        return DeletedPartition(response.steps_deleted, response.apps_deleted)

    def prune(
        self,
        partition_key: Optional[str] = ALL_PARTITIONS,  # type: ignore[assignment]
        app_id: Optional[str] = None,
        keep_last: Optional[int] = None,
        older_than: Optional[datetime] = None,
    ) -> int:
        """Deletes old steps; returns how many. A step goes when it meets every rule given: beyond
        the newest ``keep_last`` of its app, created before ``older_than`` (a datetime; naive means
        UTC). At least one rule is required. An app's highest step is never deleted.

        :param partition_key: the partition to prune; left out (``ALL_PARTITIONS``): every
            partition. None or "" is the default partition, as in every other call.
        :param app_id: only this app (needs a partition_key); None: every app in scope.
        Never retried.
        """
        call = _wire.describe(
            "prune", partition_key=partition_key, app_id=app_id, keep_last=keep_last, older_than=older_than
        )
        request = _wire.prune_request(partition_key, app_id, keep_last, older_than, call)
        response = self._invoke(
            call, lambda stub: stub.Prune(request, **self._delete_options()), idempotent=False
        )
        return response.steps_deleted

    def cleanup(self):
        """Ends the pipeline and closes the channel. A later call opens new ones."""
        self._pipeline.close()
        with self._lock:
            channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.cleanup()
        return False

    def _stream_steps(self, call: str, request: pb.ListStepsRequest) -> Iterator[StepData]:
        attempts, attempt = self.settings.attempts(True), 1
        while True:
            chunks, received = None, False
            try:
                chunks = self._current_stub().ListSteps(request, **self._list_options())
                for chunk in chunks:
                    received = True
                    for row in chunk.steps:
                        yield _wire.step_data(row, request.include_state, self.serde_kwargs)
                return
            except grpc.RpcError as error:
                # Retried only before the first chunk: after it, a new stream would repeat steps.
                if received or error.code() != grpc.StatusCode.UNAVAILABLE or attempt >= attempts:
                    raise error_from_rpc(error, call, self.settings, attempt) from error
            finally:
                if chunks is not None:
                    chunks.cancel()  # a no-op once the stream ended; else the caller stopped early
            time.sleep(self.settings.backoff_seconds(attempt))
            attempt += 1

    def _pipelined(self, request, unary: Callable, large: bool):
        """A Save or Load: on the pipeline, or unary when the server has none or the state is large."""
        if self._pipeline.supported and not large:
            try:
                return self._pipeline.call(request)
            except grpc.RpcError as error:
                # UNIMPLEMENTED: the server has no Pipeline and ran nothing, so even a Save may go again.
                if error.code() != grpc.StatusCode.UNIMPLEMENTED or self._pipeline.supported:
                    raise
        return unary(request, **self._unary_options())

    def _open_pipeline(self, requests: Iterator[pb.PipelineRequest]) -> Iterator[pb.PipelineResponse]:
        return self._current_stub().BatchedPipeline(requests, metadata=self.settings.metadata())

    def _disconnect(self):
        """No channel or pipeline until the next call opens them. A forked child starts over here
        too: the channel and stream it inherited are the parent's, served by the parent's threads."""
        self._lock = threading.Lock()
        self._channel: Optional[grpc.Channel] = None
        self._stub: Optional[StatePersisterStub] = None
        self._pipeline = CallPipeline(self._open_pipeline, self.settings.deadline_seconds)

    def _current_stub(self) -> StatePersisterStub:
        # Every call passes here: once the stub exists it is read without the lock (one attribute
        # read, atomic), which 16 threads otherwise queue on, each waiting for the GIL to come back
        # to the thread that holds it.
        stub = self._stub
        if stub is not None:
            return stub
        with self._lock:
            if self._stub is None:
                self._channel = self.settings.open_channel()
                self._stub = StatePersisterStub(self._channel)
            return self._stub

    def _invoke(self, call: str, send: Callable[[StatePersisterStub], T], *, idempotent: bool) -> T:
        attempts, attempt = self.settings.attempts(idempotent), 1
        while True:
            try:
                return send(self._current_stub())
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt >= attempts:
                    raise error_from_rpc(error, call, self.settings, attempt) from error
            time.sleep(self.settings.backoff_seconds(attempt))
            attempt += 1


def _after_fork_in_child():
    for persister in list(_instances):
        persister._disconnect()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
