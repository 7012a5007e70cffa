"""Burr values to wire messages and back; shared by the sync and async persisters."""

from __future__ import annotations

import json
from datetime import timezone
from typing import Optional

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
    return {
        "partition_key": row.partition_key,
        "app_id": row.app_id,
        "sequence_id": row.sequence_id,
        "position": row.position,
        "state": State.deserialize(json.loads(row.state), **serde_kwargs),
        "created_at": row.created_at.ToDatetime(tzinfo=timezone.utc).isoformat(),
        "status": _status_of(row),
    }
