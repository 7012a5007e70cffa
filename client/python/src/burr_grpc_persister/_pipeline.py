"""Save and Load calls multiplexed over one BatchedPipeline stream (see the .proto).

A pipelined call costs the server part of a message instead of one HTTP/2 stream, several times
less CPU than a unary Save or Load. gRPC costs each side about the same CPU per message whatever
its size, so the calls queued while a message is sent go together in the next one (up to
MAX_BATCH_CALLS calls or MAX_BATCH_BYTES), and the server groups its answers the same way. The
stream opens on the first call, ends after a short idle time, and is replaced when it fails; the
calls it leaves unanswered fail with its status. Failures are raised as ``grpc.RpcError``
(``code()``, ``details()``), like those of unary calls, so the persisters map them to their
errors and retry them the same way. A server without BatchedPipeline (0.2.0 and older, which
answer UNIMPLEMENTED) gets unary calls.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Callable, Iterator, Optional, Union

import grpc

from ._gen import state_persister_pb2 as pb

#: How long an idle stream stays open for the next call.
IDLE_SECONDS = 0.2

#: States this large go as unary calls, so they never hold up the small calls queued behind them.
UNARY_FROM_BYTES = 1024 * 1024

#: At most this many calls in one message: the rest go in the next.
MAX_BATCH_CALLS = 256

#: A message holds more than one call only while its encoded calls stay within this many bytes.
#: A server refuses every call of a message over its limit (--max-message-bytes, 16 MiB by
#: default), so a server whose limit is at least 64 KiB, the least the clients are made for,
#: never refuses a batch whose calls it would take one by one.
MAX_BATCH_BYTES = 64 * 1024

Call = Union[pb.SaveRequest, pb.LoadRequest]
Result = Union[pb.SaveResponse, pb.LoadResponse]

_codes = {code.value[0]: code for code in grpc.StatusCode}

#: Ends a stream's request iterator.
_END = object()


class PipelineCallError(grpc.RpcError):
    """A pipelined call that failed: its own error, or its stream's."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def _request(call_id: int, call: Call) -> pb.PipelineRequest:
    if isinstance(call, pb.SaveRequest):
        return pb.PipelineRequest(call_id=call_id, save=call)
    return pb.PipelineRequest(call_id=call_id, load=call)


def _batch(
    first: pb.PipelineRequest, take_ready: Callable[[], object]
) -> tuple[pb.BatchedPipelineRequest, object]:
    """One message: ``first`` and the items ``take_ready`` gives (None when nothing is queued),
    up to MAX_BATCH_CALLS calls and MAX_BATCH_BYTES. Returns it and the item taken but not sent
    (_END, or a call that did not fit, which starts the next message), else None."""
    calls = [first]
    size = first.ByteSize()
    while len(calls) < MAX_BATCH_CALLS:
        item = take_ready()
        if item is None:
            break
        if item is _END:
            return pb.BatchedPipelineRequest(calls=calls), item
        size += item.ByteSize()
        if size > MAX_BATCH_BYTES:
            return pb.BatchedPipelineRequest(calls=calls), item
        calls.append(item)
    return pb.BatchedPipelineRequest(calls=calls), None


def _outcome(response: pb.PipelineResponse) -> Union[Result, PipelineCallError]:
    which = response.WhichOneof("result")
    if which == "error":
        code = _codes.get(response.error.code, grpc.StatusCode.UNKNOWN)
        return PipelineCallError(code, response.error.message)
    if which is None:
        return PipelineCallError(
            grpc.StatusCode.DATA_LOSS, f"the server answered pipelined call {response.call_id} with nothing"
        )
    return getattr(response, which)


def _stream_failure(error: Optional[grpc.RpcError]) -> PipelineCallError:
    """What the calls a stream leaves unanswered fail with: its status; after an OK end (the
    server shutting down) UNAVAILABLE, as the server did not run them."""
    if error is None:
        return PipelineCallError(
            grpc.StatusCode.UNAVAILABLE,
            "the server ended the pipeline before answering (is it shutting down?)",
        )
    return PipelineCallError(error.code(), error.details() or error.code().name)


def _deadline_exceeded(seconds: float) -> PipelineCallError:
    return PipelineCallError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        f"Deadline Exceeded (no answer on the pipeline within {seconds:g} s)",
    )


class _Waiter:
    """One caller of a CallPipeline waiting for its answer: a lock held until the answer is in,
    the cheapest wake-up CPython has (a Future waits on a Condition, which takes more locks and
    more switches between the reader thread and the caller)."""

    __slots__ = ("_answered", "outcome")

    def __init__(self):
        self._answered = threading.Lock()
        self._answered.acquire()
        self.outcome: Union[Result, PipelineCallError, None] = None

    def deliver(self, outcome: Union[Result, PipelineCallError]):
        self.outcome = outcome
        self._answered.release()

    def wait(self, seconds: float) -> bool:
        """True once answered; False after ``seconds`` without."""
        return self._answered.acquire(timeout=seconds)


class _Stream:
    """One open stream of a CallPipeline: requests to send, calls waiting for their answers."""

    def __init__(self):
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self.pending: dict[int, _Waiter] = {}


class CallPipeline:
    """The BatchedPipeline stream of one synchronous persister, shared by all its threads.

    grpcio sends what the request generator yields (from a thread of its own): each message
    carries the calls queued since the previous one. A reader thread (a daemon, one per stream)
    hands each answer to the caller waiting for it.
    """

    def __init__(
        self,
        open_stream: Callable[
            [Iterator[pb.BatchedPipelineRequest]], Iterator[pb.BatchedPipelineResponse]
        ],
        deadline_seconds: float,
    ):
        """
        :param open_stream: starts a BatchedPipeline call that sends these requests (the stub's method).
        :param deadline_seconds: how long a call waits for its answer.
        """
        self._open_stream = open_stream
        self._deadline_seconds = deadline_seconds
        self._lock = threading.Lock()
        self._current: Optional[_Stream] = None
        self._call_ids = itertools.count(1)
        #: False once the server answered UNIMPLEMENTED: it has no BatchedPipeline, calls go unary.
        self.supported = True

    def call(self, call: Call) -> Result:
        """Runs one Save or Load. Raises its own error, its stream's if that fails first, or
        DEADLINE_EXCEEDED."""
        waiter = _Waiter()
        with self._lock:
            stream = self._current or self._start()
            call_id = next(self._call_ids)
            stream.pending[call_id] = waiter
            # Under the lock, so an idle stream never ends with a request still queued.
            stream.requests.put(_request(call_id, call))
        if not waiter.wait(self._deadline_seconds):
            with self._lock:
                stream.pending.pop(call_id, None)
            raise _deadline_exceeded(self._deadline_seconds)
        if isinstance(waiter.outcome, PipelineCallError):
            raise waiter.outcome
        return waiter.outcome

    def close(self):
        """Ends the stream: the server answers what it has received, then ends it too."""
        with self._lock:
            stream, self._current = self._current, None
        if stream is not None:
            stream.requests.put(_END)

    def _start(self) -> _Stream:
        stream = _Stream()
        responses = self._open_stream(self._requests(stream))
        reader = threading.Thread(target=self._read, args=(stream, responses), name="burr-grpc-pipeline")
        reader.daemon = True
        reader.start()
        self._current = stream
        return stream

    def _requests(self, stream: _Stream) -> Iterator[pb.BatchedPipelineRequest]:
        def take_ready():
            try:
                return stream.requests.get_nowait()
            except queue.Empty:
                return None

        item = None
        while True:
            if item is None:
                item = self._next_or_end(stream)
            if item is _END:
                return
            message, item = _batch(item, take_ready)
            yield message

    def _next_or_end(self, stream: _Stream):
        """The next queued item, waited for; _END once the stream has been idle for IDLE_SECONDS
        (the request side then ends, the server ends the stream, the next call opens a new one)."""
        while True:
            try:
                return stream.requests.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if stream.pending or not stream.requests.empty():
                        continue
                    if self._current is stream:
                        self._current = None
                return _END

    def _read(self, stream: _Stream, responses: Iterator[pb.BatchedPipelineResponse]):
        error: Optional[grpc.RpcError] = None
        try:
            for message in responses:
                with self._lock:  # once per message: its callers are woken outside the lock
                    answered = [(stream.pending.pop(a.call_id, None), a) for a in message.answers]
                for waiter, answer in answered:
                    if waiter is not None:  # else its caller stopped waiting
                        waiter.deliver(_outcome(answer))
        except grpc.RpcError as failure:
            error = failure
            if failure.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.supported = False
        with self._lock:
            if self._current is stream:
                self._current = None
            unanswered, stream.pending = stream.pending, {}
        stream.requests.put(_END)  # lets grpcio's request thread finish
        for waiter in unanswered.values():
            waiter.deliver(_stream_failure(error))
