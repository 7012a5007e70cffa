"""GrpcStatePersister: Burr's synchronous persister interface, served by the gRPC StatePersister."""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Callable, Iterator, Optional, TypeVar

import grpc
from burr.common.types import BaseCopyable
from burr.core.persistence import BaseStatePersister, PersistedStateData
from burr.core.state import State

from . import _wire
from ._gen import state_persister_pb2 as pb
from ._gen.state_persister_pb2_grpc import StatePersisterStub
from ._pipeline import UNARY_FROM_BYTES, CallPipeline
from .errors import error_from_rpc
from .settings import ConnectionSettings

T = TypeVar("T")

#: Every live instance, so that a forked child can let go of what it inherited.
_instances: weakref.WeakSet[GrpcStatePersister] = weakref.WeakSet()


class GrpcStatePersister(BaseStatePersister, BaseCopyable):
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

    @classmethod
    def from_config(cls, config: dict) -> GrpcStatePersister:
        """Creates a persister from a dict with the keys of :meth:`from_values`."""
        return cls.from_values(**config)

    def set_serde_kwargs(self, serde_kwargs: dict):
        """Sets the serde_kwargs for the persister."""
        self.serde_kwargs = serde_kwargs

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
            chunks = stub.ListAppIds(
                request, timeout=self.settings.list_deadline_seconds, metadata=self.settings.metadata()
            )
            return [app_id for chunk in chunks for app_id in chunk.app_ids]

        return self._invoke(call, fetch, idempotent=True)

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

    def copy(self) -> GrpcStatePersister:
        """Same settings and serde_kwargs, its own channel (Burr copies persisters into parallel sub-apps)."""
        return type(self)(self.settings, self.serde_kwargs)

    __copy__ = copy

    def __getstate__(self) -> dict:
        # Channels, locks and pipelines do not pickle (Ray ships persisters to workers): keep only settings.
        return {"settings": self.settings, "serde_kwargs": self.serde_kwargs}

    def __setstate__(self, state: dict):
        self.__init__(state["settings"], state["serde_kwargs"])

    def _unary_options(self) -> dict:
        return {"timeout": self.settings.deadline_seconds, "metadata": self.settings.metadata()}

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
        return self._current_stub().Pipeline(requests, metadata=self.settings.metadata())

    def _disconnect(self):
        """No channel or pipeline until the next call opens them. A forked child starts over here
        too: the channel and stream it inherited are the parent's, served by the parent's threads."""
        self._lock = threading.Lock()
        self._channel: Optional[grpc.Channel] = None
        self._stub: Optional[StatePersisterStub] = None
        self._pipeline = CallPipeline(self._open_pipeline, self.settings.deadline_seconds)

    def _current_stub(self) -> StatePersisterStub:
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
