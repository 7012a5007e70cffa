"""Burr values to wire messages and back; shared by the sync and async persisters."""

from __future__ import annotations

import json
from datetime import timezone
from typing import Optional

from burr.core.persistence import PersistedStateData
from burr.core.state import State

from ._gen import state_persister_pb2 as pb
from .errors import InvalidArgumentError

_status_to_wire = {"completed": pb.STATUS_COMPLETED, "failed": pb.STATUS_FAILED}
_status_from_wire = {wire: name for name, wire in _status_to_wire.items()}


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
    if status not in _status_to_wire:
        raise InvalidArgumentError(f"{call}: status must be 'completed' or 'failed', got {status!r}")
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
        status=_status_to_wire[status],
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
        "status": _status_from_wire[row.status],
    }
