"""The state bytes the server stores are exactly json.dumps(state.serialize()), and load gives
back equal values: what Python's JSON really emits survives the trip (never re-parsed)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from burr.core import State, serde

from burr_grpc_persister._gen import state_persister_pb2 as pb
from helpers import new_app_id


@dataclasses.dataclass
class Money:
    """A value with its own serde, so the JSON carries nested ``__burr_serde__`` markers."""

    cents: int
    currency: str


@serde.serialize.register(Money)
def _serialize_money(value: Money, **kwargs) -> dict:
    return {serde.KEY: "test.money", "cents": value.cents, "currency": value.currency}


@serde.deserializer.register("test.money")
def _deserialize_money(value: dict, money_default_currency: str = "EUR", **kwargs) -> Money:
    return Money(value["cents"], value.get("currency") or money_default_currency)


CASES = {
    "big integers": {"two_to_64": 2**64, "ten_to_30": 10**30, "negative": -(2**70), "max_int64_plus": 2**63},
    "floats stay floats": {
        "one": 1.0,
        "minus_zero": -0.0,
        "big": 1e20,
        "tiny": 5e-324,
        "tenth": 0.1,
        "third": 1 / 3,
    },
    "non-finite floats": {"nan": float("nan"), "inf": float("inf"), "minus_inf": float("-inf")},
    "ints and bools stay apart": {"one": 1, "true": True, "zero": 0, "false": False, "none": None},
    "lone surrogates": {"high": "\ud800", "low": "a\udfffb", "pair_split": ["\ud83d", "\ude00"]},
    "non-ASCII and control text": {"text": "é 日本 🎉 \u2028", "nul": "a\u0000b", "quote": '"\\/'},
    "key order": {"b": 1, "a": 2, "10": 3, "2": 4, "": 5, "nested": {"z": 1, "1": 2, "y": {"b": 0, "a": 0}}},
    "serde markers": {
        "price": Money(1999, "USD"),
        "basket": [Money(1, "EUR"), {"inner": Money(2, "GBP")}],
    },
    "empty things": {"empty_text": "", "empty_list": [], "empty_dict": {}},
}


def same(left, right) -> bool:
    """Equal in value and in type, NaN equal to NaN, -0.0 distinct from 0.0."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return (math.isnan(left) and math.isnan(right)) or (
            left == right and math.copysign(1, left) == math.copysign(1, right)
        )
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right))
    return left == right


def stored_bytes(raw_stub, partition: str, app_id: str) -> bytes:
    response = raw_stub.Load(pb.LoadRequest(partition_key=partition, app_id=app_id), timeout=10)
    return response.persisted_state.state


@pytest.mark.parametrize("values", CASES.values(), ids=CASES.keys())
def test_stored_bytes_are_json_dumps_and_values_come_back(persister, raw_stub, partition, values):
    app_id = new_app_id()
    original = State(values)

    persister.save(partition, app_id, 0, "step", original, "completed")

    assert stored_bytes(raw_stub, partition, app_id) == json.dumps(original.serialize()).encode("utf-8")
    loaded = persister.load(partition, app_id)["state"].get_all()
    assert same(loaded, original.get_all()), (loaded, original.get_all())


def test_integral_float_is_still_a_float_after_load(persister, partition):
    app_id = new_app_id()
    persister.save(partition, app_id, 0, "step", State({"ratio": 1.0, "count": 1}), "completed")

    loaded = persister.load(partition, app_id)["state"]
    assert type(loaded["ratio"]) is float and type(loaded["count"]) is int


def test_serde_kwargs_reach_serialize_and_deserialize(persister, raw_stub, partition):
    app_id = new_app_id()
    persister.set_serde_kwargs({"money_default_currency": "CHF"})
    persister.save(partition, app_id, 0, "step", State({"price": Money(500, "")}), "completed")

    assert persister.load(partition, app_id)["state"]["price"] == Money(500, "CHF")
    assert b'"__burr_serde__": "test.money"' in stored_bytes(raw_stub, partition, app_id)


def test_burr_internal_keys_survive(persister, partition):
    app_id = new_app_id()
    original = State({"__SEQUENCE_ID": 4, "__PRIOR_STEP": "think", "answer": 42})
    persister.save(partition, app_id, 4, "think", original, "completed")

    assert persister.load(partition, app_id)["state"].get_all() == original.get_all()
