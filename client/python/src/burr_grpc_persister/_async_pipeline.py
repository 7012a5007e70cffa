"""The asyncio twin of ``_pipeline.CallPipeline``: Save and Load calls multiplexed over one
grpc.aio BatchedPipeline stream, with the same rules (see ``_pipeline``: the calls queued while a
message is sent go together in the next) and the same helpers."""

from __future__ import annotations

import asyncio
import itertools
from typing import AsyncIterator, Callable, Iterator, Optional, Union

import grpc

from ._gen import state_persister_pb2 as pb
from ._pipeline import (
    _END,
    IDLE_SECONDS,
    Call,
    PipelineCallError,
    Result,
    _batch,
    _deadline_exceeded,
    _outcome,
    _request,
    _stream_failure,
)

Requests = Union[AsyncIterator[pb.BatchedPipelineRequest], Iterator[pb.BatchedPipelineRequest]]


def _answer(future: asyncio.Future, response: pb.PipelineResponse):
    """Settles the caller's Future with the answer: a result, or its call's error."""
    outcome = _outcome(response)
    if isinstance(outcome, PipelineCallError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class _Stream:
    """One open stream: requests to send, calls waiting for their answers, its event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.requests: asyncio.Queue = asyncio.Queue()
        self.pending: dict[int, asyncio.Future] = {}
        self.last_call = loop.time()
        self.reader: Optional[asyncio.Task] = None


class AsyncCallPipeline:
    """The BatchedPipeline stream of one async persister, shared by all its tasks.

    grpc.aio sends what the request generator yields (from a task of its own): each message
    carries the calls queued since the previous one. A reader task hands each answer to the Future
    its caller awaits. Everything runs on the stream's event loop, so no locks: a new loop (a
    second ``asyncio.run``) gets a stream of its own.
    """

    def __init__(
        self,
        open_stream: Callable[[Requests], AsyncIterator[pb.BatchedPipelineResponse]],
        deadline_seconds: float,
    ):
        """
        :param open_stream: starts a BatchedPipeline call that sends these requests (the stub's method).
        :param deadline_seconds: how long a call waits for its answer.
        """
        self._open_stream = open_stream
        self._deadline_seconds = deadline_seconds
        self._current: Optional[_Stream] = None
        self._call_ids = itertools.count(1)
        #: False once the server answered UNIMPLEMENTED: it has no BatchedPipeline, calls go unary.
        self.supported = True

    async def call(self, call: Call) -> Result:
        """Runs one Save or Load. Raises its own error, its stream's if that fails first, or
        DEADLINE_EXCEEDED."""
        loop = asyncio.get_running_loop()
        stream = self._current
        if stream is None or stream.loop is not loop:
            stream = self._start(loop)
        call_id = next(self._call_ids)
        future = loop.create_future()
        stream.pending[call_id] = future
        stream.last_call = loop.time()
        stream.requests.put_nowait(_request(call_id, call))
        expiry = loop.call_later(self._deadline_seconds, self._expire, stream, call_id)
        try:
            return await future
        finally:
            expiry.cancel()
            stream.pending.pop(call_id, None)  # answered already, unless the caller was cancelled

    async def close(self):
        """Ends the stream: the server answers what it has received, then ends it too (waited for
        up to the call deadline)."""
        stream, self._current = self._current, None
        if stream is None or stream.loop is not asyncio.get_running_loop():
            return  # none, or one of a loop that has ended
        stream.requests.put_nowait(_END)
        await asyncio.wait([stream.reader], timeout=self._deadline_seconds)

    def _start(self, loop: asyncio.AbstractEventLoop) -> _Stream:
        stream = _Stream(loop)
        responses = self._open_stream(self._requests(stream))
        stream.reader = loop.create_task(self._read(stream, responses), name="burr-grpc-pipeline")
        loop.call_later(IDLE_SECONDS, self._end_if_idle, stream)
        self._current = stream
        return stream

    def _expire(self, stream: _Stream, call_id: int):
        future = stream.pending.pop(call_id, None)
        if future is not None and not future.done():
            future.set_exception(_deadline_exceeded(self._deadline_seconds))

    def _end_if_idle(self, stream: _Stream):
        """Ends the request side of a stream with no call for IDLE_SECONDS (the server then ends
        the stream; the next call opens a new one). One timer per stream, not one per call."""
        if self._current is not stream:
            return
        idle = stream.loop.time() - stream.last_call
        if stream.pending or idle < IDLE_SECONDS:
            wait = IDLE_SECONDS if stream.pending else IDLE_SECONDS - idle
            stream.loop.call_later(wait, self._end_if_idle, stream)
            return
        self._current = None
        stream.requests.put_nowait(_END)

    async def _requests(self, stream: _Stream) -> AsyncIterator[pb.BatchedPipelineRequest]:
        def take_ready():
            try:
                return stream.requests.get_nowait()
            except asyncio.QueueEmpty:
                return None

        item = await stream.requests.get()
        while item is not _END:
            message, item = _batch(item, take_ready)
            yield message
            if item is None:
                item = await stream.requests.get()

    async def _read(self, stream: _Stream, responses: AsyncIterator[pb.BatchedPipelineResponse]):
        error: Optional[grpc.RpcError] = None
        try:
            async for message in responses:
                for answer in message.answers:
                    future = stream.pending.pop(answer.call_id, None)
                    if future is not None and not future.done():  # else its caller stopped waiting
                        _answer(future, answer)
        except grpc.RpcError as failure:
            error = failure
        except asyncio.CancelledError:  # the channel was closed under the stream
            error = PipelineCallError(grpc.StatusCode.CANCELLED, "the persister's channel was closed")
        if self._current is stream:  # before anything awaited: new calls go to a new stream
            self._current = None
        if error is not None and error.code() == grpc.StatusCode.INTERNAL:
            error = await self._status_of_an_empty_stream()
        if error is not None and error.code() == grpc.StatusCode.UNIMPLEMENTED:
            self.supported = False
        unanswered, stream.pending = stream.pending, {}
        stream.requests.put_nowait(_END)  # lets grpc.aio's request task finish
        for future in unanswered.values():
            if not future.done():
                future.set_exception(_stream_failure(error))

    async def _status_of_an_empty_stream(self) -> Optional[grpc.RpcError]:
        """The status the server gives a stream, asked again with one that sends nothing.

        grpc.aio replaces a stream's status with INTERNAL when a write meets the stream's end
        (an UNIMPLEMENTED server, one shutting down, a refused token); a stream that writes
        nothing cannot meet that race.
        """
        async def finish():
            async for _ in self._open_stream(iter(())):
                pass

        try:
            await asyncio.wait_for(finish(), self._deadline_seconds)
        except grpc.RpcError as error:
            return error
        except asyncio.TimeoutError:
            return _deadline_exceeded(self._deadline_seconds)
        return None
