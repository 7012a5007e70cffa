"""AsyncGrpcStatePersister: Burr's async persister interface over grpc.aio."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import AsyncIterator, Awaitable, Callable, Optional, TypeVar

import grpc
from burr.core.persistence import AsyncBaseStatePersister, PersistedStateData
from burr.core.state import State

from . import _wire
from ._async_pipeline import AsyncCallPipeline
from ._common import PersisterBase
from ._gen import state_persister_pb2 as pb
from ._gen.state_persister_pb2_grpc import StatePersisterStub
from ._pipeline import UNARY_FROM_BYTES
from ._wire import ALL_PARTITIONS, DeletedPartition, StepData
from .errors import error_from_rpc
from .settings import ConnectionSettings

T = TypeVar("T")


class AsyncGrpcStatePersister(AsyncBaseStatePersister, PersisterBase):
    """The async twin of :class:`GrpcStatePersister`, for applications built with ``abuild()``::

        async with AsyncGrpcStatePersister.from_values(host="127.0.0.1", port=50051) as persister:
            app = await ApplicationBuilder()...with_state_persister(persister).abuild()

    Concurrent tasks' saves and loads share one Pipeline stream (unary calls when the server has
    none). The channel opens on the first call, in the running event loop; copies and unpickled
    instances open their own.
    """

    def __init__(self, settings: ConnectionSettings, serde_kwargs: Optional[dict] = None):
        """
        :param settings: where the server is and how to call it.
        :param serde_kwargs: kwargs for ``State.serialize`` / ``State.deserialize``.
        """
        self.settings = settings
        self.serde_kwargs = serde_kwargs or {}
        self._channel: Optional[grpc.aio.Channel] = None
        self._stub: Optional[StatePersisterStub] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._pipeline = AsyncCallPipeline(self._open_pipeline, settings.deadline_seconds)

    @classmethod
    def from_values(
        cls, host: str, port: int, serde_kwargs: Optional[dict] = None, **connection
    ) -> AsyncGrpcStatePersister:
        """Creates a persister for the server at host:port (nothing to await: the channel opens lazily).

        :param connection: any other :class:`ConnectionSettings` field.
        """
        return cls(ConnectionSettings(host=host, port=port, **connection), serde_kwargs)

    async def initialize(self):
        """Creates the server's tables if needed. Idempotent."""
        await self._invoke(
            "initialize()",
            lambda stub: stub.Initialize(pb.InitializeRequest(), **self._unary_options()),
            idempotent=True,
        )

    async def is_initialized(self) -> bool:
        response = await self._invoke(
            "is_initialized()",
            lambda stub: stub.IsInitialized(pb.IsInitializedRequest(), **self._unary_options()),
            idempotent=True,
        )
        return response.initialized

    async def save(
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
        await self._invoke(call, lambda stub: self._pipelined(request, stub.Save, large), idempotent=False)

    async def load(
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
        response = await self._invoke(
            call, lambda stub: self._pipelined(request, stub.Load, False), idempotent=True
        )
        return _wire.persisted_state_data(response, self.serde_kwargs)

    async def list_app_ids(self, partition_key: Optional[str], **kwargs) -> list[str]:
        """The partition's app ids, each once, most recently written first."""
        call = _wire.describe("list_app_ids", partition_key=partition_key)
        request = _wire.list_request(partition_key, call)

        async def fetch(stub: StatePersisterStub) -> list[str]:
            chunks = stub.ListAppIds(request, **self._list_options())
            return [app_id async for chunk in chunks for app_id in chunk.app_ids]

        return await self._invoke(call, fetch, idempotent=True)

    def list_steps(
        self,
        partition_key: Optional[str],
        app_id: str,
        before_sequence_id: Optional[int] = None,
        limit: Optional[int] = None,
        include_state: bool = False,
    ) -> AsyncIterator[StepData]:
        """The app's saved steps, newest first, as an async generator (``async for step in
        persister.list_steps(...)``; nothing to await first). Same arguments, order and dicts as
        :meth:`GrpcStatePersister.list_steps`: the arguments are checked at once, the stream opens
        on the first step asked for, is retried on UNAVAILABLE only until its first chunk arrives,
        and ``list_deadline_seconds`` bounds all of it. Stopping early cancels the stream once the
        generator is closed (``aclose()``, or ``contextlib.aclosing``)."""
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

    async def delete_app(self, partition_key: Optional[str], app_id: str) -> int:
        """Deletes every step of the app; returns how many (0 for an unknown app). Never retried."""
        call = _wire.describe("delete_app", partition_key=partition_key, app_id=app_id)
        request = _wire.delete_app_request(partition_key, app_id, call)
        response = await self._invoke(
            call, lambda stub: stub.DeleteApp(request, **self._delete_options()), idempotent=False
        )
        return response.steps_deleted

    async def delete_partition(self, partition_key: Optional[str]) -> DeletedPartition:
        """Deletes every app of the partition; returns ``DeletedPartition(steps_deleted,
        apps_deleted)``. Never retried."""
        call = _wire.describe("delete_partition", partition_key=partition_key)
        request = _wire.delete_partition_request(partition_key, call)
        response = await self._invoke(
            call, lambda stub: stub.DeletePartition(request, **self._delete_options()), idempotent=False
        )
        return DeletedPartition(response.steps_deleted, response.apps_deleted)

    async def prune(
        self,
        partition_key: Optional[str] = ALL_PARTITIONS,  # type: ignore[assignment]
        app_id: Optional[str] = None,
        keep_last: Optional[int] = None,
        older_than: Optional[datetime] = None,
    ) -> int:
        """Deletes old steps, never an app's highest; returns how many. Same rules as
        :meth:`GrpcStatePersister.prune` (partition_key left out: every partition). Never retried."""
        call = _wire.describe(
            "prune", partition_key=partition_key, app_id=app_id, keep_last=keep_last, older_than=older_than
        )
        request = _wire.prune_request(partition_key, app_id, keep_last, older_than, call)
        response = await self._invoke(
            call, lambda stub: stub.Prune(request, **self._delete_options()), idempotent=False
        )
        return response.steps_deleted

    async def cleanup(self):
        """Ends the pipeline and closes the channel. A later call opens new ones."""
        await self._pipeline.close()
        channel, self._channel, self._stub, self._loop = self._channel, None, None, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc_value, traceback):
        await self.cleanup()
        return False

    async def _stream_steps(self, call: str, request: pb.ListStepsRequest) -> AsyncIterator[StepData]:
        attempts, attempt = self.settings.attempts(True), 1
        while True:
            chunks, received = None, False
            try:
                chunks = self._current_stub().ListSteps(request, **self._list_options())
                async for chunk in chunks:
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
            await asyncio.sleep(self.settings.backoff_seconds(attempt))
            attempt += 1

    async def _pipelined(self, request, unary: Callable, large: bool):
        """A Save or Load: on the pipeline, or unary when the server has none or the state is large."""
        if self._pipeline.supported and not large:
            try:
                return await self._pipeline.call(request)
            except grpc.RpcError as error:
                # UNIMPLEMENTED: the server has no Pipeline and ran nothing, so even a Save may go again.
                if error.code() != grpc.StatusCode.UNIMPLEMENTED or self._pipeline.supported:
                    raise
        return await unary(request, **self._unary_options())

    def _open_pipeline(
        self, requests: AsyncIterator[pb.PipelineRequest]
    ) -> AsyncIterator[pb.PipelineResponse]:
        return self._current_stub().BatchedPipeline(requests, metadata=self.settings.metadata())

    def _current_stub(self) -> StatePersisterStub:
        # A grpc.aio channel belongs to the loop it was opened in; a new loop (a second
        # asyncio.run) gets a new channel instead of failing.
        loop = asyncio.get_running_loop()
        if self._stub is None or self._loop is not loop:
            self._channel, self._loop = self.settings.open_aio_channel(), loop
            self._stub = StatePersisterStub(self._channel)
        return self._stub

    async def _invoke(
        self, call: str, send: Callable[[StatePersisterStub], Awaitable[T]], *, idempotent: bool
    ) -> T:
        attempts, attempt = self.settings.attempts(idempotent), 1
        while True:
            try:
                return await send(self._current_stub())
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt >= attempts:
                    raise error_from_rpc(error, call, self.settings, attempt) from error
            await asyncio.sleep(self.settings.backoff_seconds(attempt))
            attempt += 1
