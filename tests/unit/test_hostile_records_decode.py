"""No record can crash the decoder or the consumer: whatever the bytes, decoding gives an
Envelope or a MalformedEnvelope, and the consumer parks the record and goes on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat_outbox.application.operate.operations import read_history
from chat_outbox.domain import Envelope, MalformedEnvelope
from tests.unit.conftest import Harness

pytestmark = pytest.mark.unit

# Every code point, lone surrogates included (hypothesis leaves them out by default).
ANY_CHARACTER = st.characters(exclude_categories=())
ANY_TEXT = st.text(alphabet=ANY_CHARACTER, max_size=40)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(ANY_TEXT, inner, max_size=5),
    max_leaves=30,
)
ENVELOPE_FIELDS = ("event_id", "type", "schema_version", "occurred_at", "key", "outbox_id")
PAYLOAD_FIELDS = ("user_id", "conversation_id", "role", "message")


def valid_document() -> dict[str, Any]:
    return {
        "event_id": "00000000-0000-0000-0000-000000000001",
        "type": "chat_history_persist",
        "schema_version": 1,
        "occurred_at": "2026-01-01T00:00:00+00:00",
        "key": "c",
        "outbox_id": 1,
        "payload": {"user_id": 1, "conversation_id": "c", "role": "user", "message": "hi"},
    }


def deep(depth: int, opener: str) -> str:
    """A JSON value nested `depth` levels deep, of arrays or of objects."""
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def with_raw_value(field: str, raw: str) -> bytes:
    """A valid envelope whose `field` (top level or payload) is the raw JSON text `raw`."""
    document = valid_document()
    target = document["payload"] if field in PAYLOAD_FIELDS else document
    target[field] = "@@RAW@@"
    return json.dumps(document).replace('"@@RAW@@"', raw).encode()


def encodings(value: Any) -> st.SearchStrategy[bytes]:
    """The value as ASCII JSON (surrogates escaped) or as raw UTF-8 (surrogates passed)."""
    return st.sampled_from(
        [
            json.dumps(value).encode(),
            json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        ]
    )


def arbitrary_json() -> st.SearchStrategy[bytes]:
    return JSON_VALUES.flatmap(encodings)


def envelope_with_one_field_replaced() -> st.SearchStrategy[bytes]:
    def replaced(field: str, value: Any) -> dict[str, Any]:
        document = valid_document()
        target = document["payload"] if field in PAYLOAD_FIELDS else document
        target[field] = value
        return document

    fields = st.sampled_from((*ENVELOPE_FIELDS, *PAYLOAD_FIELDS, "payload"))
    return st.builds(replaced, fields, JSON_VALUES).flatmap(encodings)


def deep_or_huge() -> st.SearchStrategy[bytes]:
    fields = st.sampled_from((*ENVELOPE_FIELDS, *PAYLOAD_FIELDS, "payload"))
    nested = st.builds(deep, st.integers(1, 3000), st.sampled_from("[{")).map(str)
    digits = st.integers(4000, 20_000).map(lambda n: "9" * n)
    exponent = st.integers(4000, 20_000).map(lambda n: "1e" + "9" * n)
    raw = nested | digits | exponent
    whole = st.builds(deep, st.integers(1, 3000), st.sampled_from("[{")).map(str.encode)
    return st.builds(with_raw_value, fields, raw) | whole


HOSTILE_BYTES = (
    st.binary(max_size=300) | arbitrary_json() | envelope_with_one_field_replaced() | deep_or_huge()
)


def assert_decodes_or_is_malformed(data: bytes) -> None:
    try:
        decoded = Envelope.decode(data)
    except MalformedEnvelope as error:
        str(error).encode("utf-8")  # the reason goes into a header and a log line as is
    else:
        assert isinstance(decoded, Envelope)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HOSTILE_BYTES)
def test_any_bytes_decode_to_an_envelope_or_raise_malformed_envelope_only(data: bytes) -> None:
    """Arbitrary bytes, arbitrary JSON (deep, wide, huge numbers, odd unicode, lone
    surrogates) and envelopes with any field replaced never raise anything but
    MalformedEnvelope, whose reason is valid UTF-8."""
    assert_decodes_or_is_malformed(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (deep(1000, "[").encode(), "nested too deeply"),
        (with_raw_value("message", deep(1000, "{")), "nested too deeply"),
        (with_raw_value("user_id", "7" * 5000), "too many digits"),
        (with_raw_value("outbox_id", "1" * 4301), "too many digits"),
    ],
    ids=["1000 deep array", "1000 deep message", "5000 digits", "4301 digits"],
)
def test_deep_nesting_and_huge_integers_are_malformed_with_a_reason(
    data: bytes, reason: str
) -> None:
    """A 2 KB record nested about 1,000 levels deep, or an integer over Python's 4,300-digit
    limit, is a MalformedEnvelope naming the problem, not a RecursionError or ValueError."""
    with pytest.raises(MalformedEnvelope, match=reason):
        Envelope.decode(data)


async def test_the_consumer_parks_deep_and_huge_records_and_persists_those_behind(
    harness: Harness,
) -> None:
    """Deep and huge-number records between valid ones go to the DLQ with their reasons,
    and the valid records behind them reach chat history in the same batch."""
    rows = [await harness.record("conv-1", text) for text in ("first", "second", "third")]
    valid = [Envelope.for_outbox_message(row).encode() for row in rows]
    hostile = [with_raw_value("payload", deep(1000, "[")), with_raw_value("user_id", "7" * 5000)]
    for value in (valid[0], hostile[0], valid[1], hostile[1], valid[2], valid[0]):
        harness.bus.produce_raw(value, b"conv-1")  # the last one a redelivery, harmless

    report = await harness.consumer().consume_batch(0.0)

    assert (report.persisted, report.dead_lettered, report.duplicates) == (3, 2, 1)
    reasons = [reason for _, reason in harness.bus.dead_letters]
    assert ["nested too deeply" in reasons[0], "too many digits" in reasons[1]] == [True, True]
    history = await read_history(harness.uow, "conv-1")
    assert [entry.message for entry in history] == ["first", "second", "third"]
    assert harness.bus.acknowledged == len(harness.bus.log)
