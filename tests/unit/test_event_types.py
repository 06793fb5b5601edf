"""Event types besides chat (domain.events): the rules of a type's name, an event's key, and
the payload every event passes before it is recorded or handled."""

from __future__ import annotations

import json
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chat_outbox.domain import EventType, InvalidEvent
from chat_outbox.domain.events import (
    DEFAULT_MAX_EVENT_BYTES,
    MAX_EVENT_KEY_LENGTH,
    MAX_EVENT_TYPE_LENGTH,
    MAX_PAYLOAD_DEPTH,
    Validator,
    checked_key,
    checked_type_name,
)

pytestmark = pytest.mark.unit

KIND = EventType("agent_run.finished")

# --- type names ------------------------------------------------------------------------

FIRST = string.ascii_lowercase
REST = string.ascii_lowercase + string.digits + "_"
WORD = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(FIRST),
    st.text(alphabet=REST, max_size=8),
)
DOTTED_NAME = st.lists(WORD, min_size=1, max_size=5).map(".".join)
# Mostly the characters a name is made of, plus the ones that break it.
NAME_LIKE_TEXT = st.text(
    alphabet=st.sampled_from(REST + ".-:/ \t\nABZé" + "ı" + "\u212a") | st.characters(),
    max_size=80,
)


def follows_the_name_rule(text: str) -> bool:
    """The rule written out without a regex: dot-separated words, each an ASCII lower-case
    letter then lower-case letters, digits or underscores."""
    words = text.split(".")
    return all(
        word != "" and word[0] in FIRST and all(char in REST for char in word[1:]) for word in words
    )


@given(DOTTED_NAME.filter(lambda name: len(name) <= MAX_EVENT_TYPE_LENGTH))
def test_dotted_lower_case_name_is_accepted_as_is(name: str) -> None:
    assert checked_type_name(name) == name
    assert EventType(name).name == name


@given(NAME_LIKE_TEXT)
def test_a_name_is_accepted_exactly_when_it_follows_the_rule_and_fits(text: str) -> None:
    """Any text: accepted if dotted lower-case words of at most 64 characters, else
    InvalidEvent (never another error)."""
    expected = follows_the_name_rule(text) and len(text) <= MAX_EVENT_TYPE_LENGTH
    try:
        accepted = checked_type_name(text) == text
    except InvalidEvent:
        accepted = False
    assert accepted is expected


@given(NAME_LIKE_TEXT.filter(lambda text: not follows_the_name_rule(text)))
def test_event_type_with_a_name_breaking_the_rule_cannot_be_built(text: str) -> None:
    with pytest.raises(InvalidEvent, match="dotted lower-case words"):
        EventType(text)


@pytest.mark.parametrize(
    "name",
    ["", ".", "a.", ".a", "a..b", "1a", "_a", "A.b", "agent-run", "a b", "a.b\n", "é"],
)
def test_name_examples_breaking_the_rule_are_refused(name: str) -> None:
    with pytest.raises(InvalidEvent, match="dotted lower-case words"):
        checked_type_name(name)


LONG_WORD = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(FIRST),
    st.text(alphabet=REST, min_size=MAX_EVENT_TYPE_LENGTH - 8, max_size=100),
)
TOO_LONG_NAME = st.builds(
    lambda words, long_word: ".".join([*words, long_word]),
    st.lists(WORD, min_size=1, max_size=4),
    LONG_WORD,
).filter(lambda name: len(name) > MAX_EVENT_TYPE_LENGTH)


@given(TOO_LONG_NAME | st.just("a" * (MAX_EVENT_TYPE_LENGTH + 1)))
def test_name_over_64_characters_is_refused(name: str) -> None:
    with pytest.raises(InvalidEvent, match="at most 64 characters"):
        checked_type_name(name)


def test_name_of_exactly_64_characters_is_accepted() -> None:
    name = "a" * 31 + "." + "b" * 32
    assert checked_type_name(name) == name


@pytest.mark.parametrize("value", [None, 7, b"a.b", ["a.b"]])
def test_name_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(InvalidEvent, match="dotted lower-case words"):
        checked_type_name(value)


# --- keys ------------------------------------------------------------------------------

# Other (Cc Cf Cs Co Cn) and Separator (Zs Zl Zp): what str.isprintable refuses, but " ".
PRINTABLE = st.characters(exclude_categories=("C", "Z")) | st.just(" ")
NOT_PRINTABLE = st.characters(categories=("C", "Z")).filter(lambda c: c != " ")


@given(st.text(PRINTABLE, min_size=1, max_size=MAX_EVENT_KEY_LENGTH))
def test_key_of_1_to_128_printable_characters_is_accepted_as_is(key: str) -> None:
    assert checked_key(key) == key


@given(
    st.text(PRINTABLE, min_size=0, max_size=MAX_EVENT_KEY_LENGTH - 1),
    NOT_PRINTABLE,
    st.integers(min_value=0),
)
def test_key_with_a_control_format_or_invisible_character_is_refused(
    key: str, bad: str, where: int
) -> None:
    """One control, format, separator, surrogate or unassigned character anywhere."""
    at = where % (len(key) + 1)
    with pytest.raises(InvalidEvent, match="control, format or invisible"):
        checked_key(key[:at] + bad + key[at:])


@pytest.mark.parametrize("bad", ["\x00", "\n", "\t", "\x7f", "\u200b", "\u202e", "\ufeff", "\xa0"])
def test_key_examples_with_an_unprintable_character_are_refused(bad: str) -> None:
    with pytest.raises(InvalidEvent, match="control, format or invisible"):
        checked_key("conv" + bad)


@given(st.text(PRINTABLE, min_size=MAX_EVENT_KEY_LENGTH + 1, max_size=300))
def test_key_over_128_characters_is_refused(key: str) -> None:
    with pytest.raises(InvalidEvent, match="1-128 characters"):
        checked_key(key)


def test_empty_key_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="1-128 characters"):
        checked_key("")


@pytest.mark.parametrize(
    ("value", "type_name"), [(None, "NoneType"), (7, "int"), (b"k", "bytes"), (["k"], "list")]
)
def test_key_that_is_not_a_string_is_refused_naming_its_type(value: object, type_name: str) -> None:
    with pytest.raises(InvalidEvent, match=f"must be a string, got {type_name}"):
        checked_key(value)


# --- payloads --------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def as_json_reads_it(value: Any) -> Any:
    """What json.loads gives back for `value`: tuples become lists."""
    if isinstance(value, list | tuple):
        return [as_json_reads_it(item) for item in value]
    if isinstance(value, dict):
        return {name: as_json_reads_it(item) for name, item in value.items()}
    return value


def nested(depth: int, inner: Any, as_object: bool = False) -> Any:
    """`inner` inside `depth` arrays (or objects)."""
    value = inner
    for _ in range(depth):
        value = {"a": value} if as_object else [value]
    return value


@given(JSON_VALUES)
def test_json_compatible_payload_round_trips_through_its_text(value: Any) -> None:
    text = KIND.payload_text(value)

    assert json.loads(text) == as_json_reads_it(value)


@given(JSON_VALUES)
def test_payload_text_is_compact_json(value: Any) -> None:
    """The stored text is what the compact, non-ASCII-escaping encoder writes."""
    assert KIND.payload_text(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Opaque:
    pass


LONE_SURROGATE = st.characters(categories=["Cs"])
TEXT_WITH_A_SURROGATE = st.builds(
    lambda before, bad, after: before + bad + after,
    st.text(max_size=5),
    LONE_SURROGATE,
    st.text(max_size=5),
)
BAD_LEAVES: st.SearchStrategy[Any] = st.one_of(
    st.frozensets(st.integers(), max_size=3).map(set),
    st.frozensets(st.integers(), max_size=3),
    st.binary(max_size=5),
    st.builds(bytearray, st.binary(max_size=5)),
    st.builds(Opaque),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(float("-inf")),
    st.just(Decimal("1.5")),
    st.just(1 + 2j),
    st.dictionaries(
        st.integers() | st.floats() | st.booleans() | st.none() | st.tuples(st.integers()),
        JSON_SCALARS,
        min_size=1,
        max_size=3,
    ),
    TEXT_WITH_A_SURROGATE,
    st.builds(lambda key: {key: 1}, TEXT_WITH_A_SURROGATE),
    # An integer over sys.get_int_max_str_digits() digits (4300 by default).
    st.integers(min_value=4400, max_value=5000).map(lambda digits: 10**digits),
    # Deeper than MAX_PAYLOAD_DEPTH arrays or objects with a value at the bottom.
    st.builds(
        nested,
        st.integers(min_value=MAX_PAYLOAD_DEPTH + 1, max_value=2000),
        JSON_SCALARS,
        st.booleans(),
    ),
)


def hidden_in(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A list or dict holding `inner` among JSON-compatible siblings."""
    in_list = st.builds(
        lambda before, bad, after: [*before, bad, *after],
        st.lists(JSON_SCALARS, max_size=2),
        inner,
        st.lists(JSON_SCALARS, max_size=2),
    )
    in_dict = st.builds(
        lambda siblings, name, bad: {**siblings, name: bad},
        st.dictionaries(st.text(max_size=4), JSON_SCALARS, max_size=2),
        st.text(max_size=4),
        inner,
    )
    return in_list | in_dict


NOT_JSON_COMPATIBLE: st.SearchStrategy[Any] = st.recursive(BAD_LEAVES, hidden_in, max_leaves=4)


@settings(max_examples=300, deadline=None)
@given(NOT_JSON_COMPATIBLE)
def test_payload_that_is_not_json_compatible_raises_invalid_event_only(value: Any) -> None:
    """Sets, bytes, objects, NaN and infinities, non-string or lone-surrogate keys, lone
    surrogates in text, numbers with too many digits and nesting deeper than 32, alone or
    anywhere inside a JSON value: InvalidEvent, never another exception."""
    with pytest.raises(InvalidEvent, match="event payload"):
        KIND.payload_text(value)


@pytest.mark.parametrize("as_object", [False, True], ids=["arrays", "objects"])
def test_payload_nested_exactly_to_the_limit_is_accepted(as_object: bool) -> None:
    """MAX_PAYLOAD_DEPTH arrays (or objects) with a value at the bottom are accepted."""
    value = nested(MAX_PAYLOAD_DEPTH, 1, as_object)

    assert json.loads(KIND.payload_text(value)) == value


@pytest.mark.parametrize("as_object", [False, True], ids=["arrays", "objects"])
def test_payload_nested_one_past_the_limit_is_refused(as_object: bool) -> None:
    with pytest.raises(InvalidEvent, match=f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"):
        KIND.payload_text(nested(MAX_PAYLOAD_DEPTH + 1, 1, as_object))


@example(depth=MAX_PAYLOAD_DEPTH + 1, bottom=[], as_object=False)
@example(depth=MAX_PAYLOAD_DEPTH + 1, bottom={}, as_object=True)
@given(
    depth=st.integers(min_value=MAX_PAYLOAD_DEPTH + 1, max_value=MAX_PAYLOAD_DEPTH + 40),
    bottom=st.sampled_from([1, "x", None, [], {}]),
    as_object=st.booleans(),
)
def test_containers_nested_deeper_than_the_limit_are_refused_whatever_is_at_the_bottom(
    depth: int, bottom: Any, as_object: bool
) -> None:
    """More than MAX_PAYLOAD_DEPTH arrays or objects inside each other are refused, be the
    innermost one empty or holding a value (an empty one is still a level of nesting)."""
    innermost_is_a_level = isinstance(bottom, list | dict)
    value = nested(depth - 1 if innermost_is_a_level else depth, bottom, as_object)
    with pytest.raises(InvalidEvent, match="nested deeper"):
        KIND.payload_text(value)


def compact_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@given(JSON_VALUES.filter(lambda value: compact_size(value) >= 2))
def test_payload_exactly_at_the_size_limit_is_accepted(value: Any) -> None:
    kind = EventType("agent_run.finished", max_payload_bytes=compact_size(value))

    assert json.loads(kind.payload_text(value)) == as_json_reads_it(value)


@given(JSON_VALUES.filter(lambda value: compact_size(value) >= 3))
def test_payload_over_the_size_limit_is_refused_naming_size_and_limit(value: Any) -> None:
    """The limit counts UTF-8 bytes of the compact text; the refusal names both numbers."""
    size = compact_size(value)
    kind = EventType("agent_run.finished", max_payload_bytes=size - 1)

    with pytest.raises(InvalidEvent) as refused:
        kind.payload_text(value)

    assert str(refused.value) == (
        f"agent_run.finished payload is {size} bytes, over its limit of {size - 1} bytes"
    )


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    """ "é" is 2 bytes: '"é"' is 3 characters but 4 bytes."""
    with pytest.raises(InvalidEvent, match="is 4 bytes, over its limit of 3 bytes"):
        EventType("a.b", max_payload_bytes=3).payload_text("é")
    assert EventType("a.b", max_payload_bytes=4).payload_text("é") == '"é"'


def test_default_size_limit_is_64_kib() -> None:
    assert EventType("a.b").max_payload_bytes == DEFAULT_MAX_EVENT_BYTES == 64 * 1024
    with pytest.raises(InvalidEvent, match=f"over its limit of {DEFAULT_MAX_EVENT_BYTES}"):
        EventType("a.b").payload_text("x" * DEFAULT_MAX_EVENT_BYTES)


@pytest.mark.parametrize("limit", [1, 0, -5])
def test_size_limit_below_two_bytes_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="max_payload_bytes"):
        EventType("a.b", max_payload_bytes=limit)


# --- the type's validator ---------------------------------------------------------------


def raising(error: Exception) -> Validator:
    def validate(payload: Any) -> None:
        raise error

    return validate


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ValueError("score must be positive"), "score must be positive"),
        (TypeError("run_id must be a string"), "run_id must be a string"),
        (KeyError("run_id"), "'run_id'"),
    ],
    ids=["ValueError", "TypeError", "KeyError"],
)
def test_validator_refusal_becomes_invalid_event_with_type_name_and_reason(
    error: Exception, reason: str
) -> None:
    kind = EventType("agent_run.finished", validate=raising(error))

    with pytest.raises(InvalidEvent) as refused:
        kind.payload_text({"run_id": 1})

    assert str(refused.value) == f"invalid agent_run.finished payload: {reason}"


@given(st.text(min_size=1, max_size=40))
def test_validator_reason_is_kept_whatever_its_text(reason: str) -> None:
    kind = EventType("agent_run.finished", validate=raising(ValueError(reason)))

    with pytest.raises(InvalidEvent) as refused:
        kind.check({})

    assert str(refused.value) == f"invalid agent_run.finished payload: {reason}"


def test_validator_raising_invalid_event_passes_it_through_unchanged() -> None:
    original = InvalidEvent("run 7 has no agent")
    kind = EventType("agent_run.finished", validate=raising(original))

    with pytest.raises(InvalidEvent) as refused:
        kind.payload_text({})

    assert refused.value is original


def test_validator_sees_the_payload_and_accepting_it_lets_the_text_through() -> None:
    seen: list[Any] = []
    kind = EventType("agent_run.finished", validate=seen.append)

    assert kind.payload_text({"run_id": 7}) == '{"run_id":7}'
    assert seen == [{"run_id": 7}]


def test_validator_is_not_run_on_a_payload_that_is_not_json_compatible() -> None:
    seen: list[Any] = []
    kind = EventType("agent_run.finished", validate=seen.append)

    with pytest.raises(InvalidEvent, match="JSON cannot hold"):
        kind.payload_text({"tags": {"a"}})
    assert seen == []


@given(JSON_VALUES)
def test_default_validator_accepts_any_json_compatible_payload(value: Any) -> None:
    EventType("agent_run.finished").check(value)  # raises nothing
    assert json.loads(EventType("agent_run.finished").payload_text(value)) == as_json_reads_it(
        value
    )
