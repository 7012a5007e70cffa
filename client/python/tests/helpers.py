"""Small helpers shared by the test modules."""

from __future__ import annotations

import uuid

from burr.core import State


def new_app_id(prefix: str = "app") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def state(**values) -> State:
    return State(values)


def rows(persister, partition_key, app_id) -> list[tuple[int, str, str]]:
    """(sequence_id, position, status) of every saved step, read back through ``load`` only,
    so it works the same for any Burr persister."""
    latest = persister.load(partition_key, app_id)
    if latest is None:
        return []
    found = (
        persister.load(partition_key, app_id, sequence_id) for sequence_id in range(latest["sequence_id"] + 1)
    )
    return [(row["sequence_id"], row["position"], row["status"]) for row in found if row is not None]


async def arows(persister, partition_key, app_id) -> list[tuple[int, str, str]]:
    """``rows`` for an async persister."""
    latest = await persister.load(partition_key, app_id)
    if latest is None:
        return []
    result = []
    for sequence_id in range(latest["sequence_id"] + 1):
        row = await persister.load(partition_key, app_id, sequence_id)
        if row is not None:
            result.append((row["sequence_id"], row["position"], row["status"]))
    return result
