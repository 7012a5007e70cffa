"""Burr values to wire messages and back; shared by the sync and async persisters."""

from __future__ import annotations

import json
import operator
from datetime import datetime, timezone
from typing import NamedTuple, Optional, TypedDict

from burr.core.persistence import PersistedStateData
from burr.core.state import State

from ._gen import state_persister_pb2 as pb
from .errors import InvalidArgumentError

# Burr's two statuses travel as the enum; any other string as status_text (with STATUS_OTHER).
_status_to_wire = {"completed": pb.STATUS_COMPLETED, "failed": pb.STATUS_FAILED}
_status_from_wire = {wire: name for name, wire in _status_to_wire.items()}


def _status_fields(status: str, call: str) -> dict:
    if not isinstance(status, str):
        raise InvalidArgumentError(f"{call}: status must be a string such as 'completed' or 'failed', got {status!r}")
    if status == "":
        raise InvalidArgumentError(f"{call}: status must not be empty")
    if status in _status_to_wire:
        return {"status": _status_to_wire[status]}
    return {"status": pb.STATUS_OTHER, "status_text": status}


def _status_of(row: pb.PersistedState) -> str:
    # A server older than status_text leaves it empty: the enum then says it all.
    if row.status_text:
        return row.status_text
    return _status_from_wire.get(row.status, "")


def describe(method: str, **arguments) -> str:
    """``save(partition_key='', app_id='a', ...)``: names the call in error messages."""
    return f"{method}({', '.join(f'{name}={value!r}' for name, value in arguments.items())})"


def _message(message_type, call: str, **fields):
    # Unset fields stay absent: None is the default partition / "latest" / "any app", as in Burr.
    message = message_type()
    for name, value in fields.items():
        if value is None:
            continue
        try:
            setattr(message, name, value)
        except (TypeError, ValueError) as error:  # wrong type, out of int64 range, lone surrogate
            raise InvalidArgumentError(f"{call}: {name} cannot be sent: {error}") from error
    return message


def save_request(
    partition_key: Optional[str],
    app_id: str,
    sequence_id: int,
    position: str,
    state: State,
    status: str,
    serde_kwargs: dict,
    call: str,
) -> pb.SaveRequest:
    status_fields = _status_fields(status, call)
    # Exactly what Burr's own persisters store. json.dumps escapes non-ASCII, so this is ASCII.
    state_bytes = json.dumps(state.serialize(**serde_kwargs)).encode("utf-8")
    return _message(
        pb.SaveRequest,
        call,
        partition_key=partition_key,
        app_id=app_id,
        sequence_id=sequence_id,
        position=position,
        state=state_bytes,
        **status_fields,
    )


def load_request(
    partition_key: Optional[str], app_id: Optional[str], sequence_id: Optional[int], call: str
) -> pb.LoadRequest:
    return _message(pb.LoadRequest, call, partition_key=partition_key, app_id=app_id, sequence_id=sequence_id)


def list_request(partition_key: Optional[str], call: str) -> pb.ListAppIdsRequest:
    return _message(pb.ListAppIdsRequest, call, partition_key=partition_key)


def persisted_state_data(response: pb.LoadResponse, serde_kwargs: dict) -> Optional[PersistedStateData]:
    if not response.HasField("persisted_state"):
        return None
    row = response.persisted_state
    return _row_data(row, State.deserialize(json.loads(row.state), **serde_kwargs))


def _row_data(row: pb.PersistedState, state: Optional[State]) -> dict:
    return {
        "partition_key": row.partition_key,
        "app_id": row.app_id,
        "sequence_id": row.sequence_id,
        "position": row.position,
        "state": state,
        "created_at": row.created_at.ToDatetime(tzinfo=timezone.utc).isoformat(),
        "status": _status_of(row),
    }


# --- History and deletion ----------------------------------------------------------------------


class _AllPartitions:
    """The type of :data:`ALL_PARTITIONS`."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ALL_PARTITIONS"

    def __reduce__(self):
        return (_AllPartitions, ())


#: ``prune``'s default partition_key: every partition. (None and "" are the default partition, as
#: in every other call.)
ALL_PARTITIONS = _AllPartitions()


class StepData(TypedDict):
    """One step as ``list_steps`` yields it: Burr's ``PersistedStateData``, except that ``state``
    is None unless the listing asked for ``include_state``."""

    partition_key: str
    app_id: str
    sequence_id: int
    position: str
    state: Optional[State]
    created_at: str
    status: str


class DeletedPartition(NamedTuple):
    """What ``delete_partition`` deleted. A tuple: ``steps, apps = persister.delete_partition(...)``."""

    steps_deleted: int
    apps_deleted: int


def _require_app_id(app_id: object, call: str, hint: str = "") -> None:
    # Checked here, not only by the server: an app_id that is absent or "" must never reach a delete.
    if not isinstance(app_id, str):
        raise InvalidArgumentError(f"{call}: app_id must be a string, got {type(app_id).__name__}{hint}")
    if app_id == "":
        raise InvalidArgumentError(f"{call}: app_id is required (not empty){hint}")


def _whole_number(name: str, value: object, call: str, meaning_of_zero: str) -> Optional[int]:
    """None, or an int from 0 up (bools refused: True is not a count)."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError("a bool")
        value = operator.index(value)  # int, or an integer type such as numpy's
    except TypeError:
        raise InvalidArgumentError(f"{call}: {name} must be a whole number or None, got {value!r}") from None
    if value < 0:
        raise InvalidArgumentError(f"{call}: {name} must be 0 or more ({meaning_of_zero}), got {value}")
    return value


def list_steps_request(
    partition_key: Optional[str],
    app_id: str,
    before_sequence_id: Optional[int],
    limit: Optional[int],
    include_state: bool,
    call: str,
) -> pb.ListStepsRequest:
    _require_app_id(app_id, call)
    before = _whole_number("before_sequence_id", before_sequence_id, call, "0 lists nothing")
    count = _whole_number("limit", limit, call, "0 or None: every step")
    return _message(
        pb.ListStepsRequest,
        call,
        partition_key=partition_key,
        app_id=app_id,
        before_sequence_id=before,
        limit=count or None,
        include_state=bool(include_state) or None,
    )


def step_data(row: pb.PersistedState, include_state: bool, serde_kwargs: dict) -> StepData:
    state = State.deserialize(json.loads(row.state), **serde_kwargs) if include_state else None
    return _row_data(row, state)  # type: ignore[return-value]


def delete_app_request(partition_key: Optional[str], app_id: str, call: str) -> pb.DeleteAppRequest:
    _require_app_id(app_id, call, hint=": to delete a whole partition use delete_partition()")
    return _message(pb.DeleteAppRequest, call, partition_key=partition_key, app_id=app_id)


def delete_partition_request(partition_key: Optional[str], call: str) -> pb.DeletePartitionRequest:
    return _message(pb.DeletePartitionRequest, call, partition_key=partition_key)


def prune_request(
    partition_key: object,
    app_id: Optional[str],
    keep_last: Optional[int],
    older_than: Optional[datetime],
    call: str,
) -> pb.PruneRequest:
    every_partition = partition_key is ALL_PARTITIONS
    if app_id is not None:
        _require_app_id(app_id, call, hint=": None prunes every app")
        if every_partition:
            raise InvalidArgumentError(
                f"{call}: pruning one app_id needs its partition_key (None or \"\" for the default partition)"
            )
    keep = _whole_number("keep_last", keep_last, call, "0 or None: no count rule")
    if older_than is not None and not isinstance(older_than, datetime):
        raise InvalidArgumentError(f"{call}: older_than must be a datetime or None, got {older_than!r}")
    if not keep and older_than is None:
        raise InvalidArgumentError(
            f"{call}: prune needs keep_last or older_than (or both): without a rule it would delete nothing"
        )
    request = _message(
        pb.PruneRequest,
        call,
        # Absent is every partition here; None is the default partition, as in every other call.
        partition_key=None if every_partition else (partition_key if partition_key is not None else ""),
        app_id=app_id,
        keep_last=keep or None,
    )
    if older_than is not None:
        # A naive datetime is UTC, as the created_at strings are.
        aware = older_than if older_than.tzinfo is not None else older_than.replace(tzinfo=timezone.utc)
        try:
            request.older_than.FromDatetime(aware.astimezone(timezone.utc))
        except (OverflowError, ValueError) as error:
            raise InvalidArgumentError(f"{call}: older_than cannot be sent: {error}") from error
    return request
