"""Conversation ids are made of characters that show: no format, control or invisible ones."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat_outbox.domain import InvalidChatMessage
from chat_outbox.domain.chat import MAX_CONVERSATION_ID_LENGTH, checked_conversation_id

pytestmark = pytest.mark.unit

# Unicode's Default_Ignorable_Code_Points outside the categories str.isprintable() refuses.
IGNORABLE_MARKS = [
    *"\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0",
    *map(chr, range(0xFE00, 0xFE10)),
    *map(chr, range(0xE0100, 0xE01F0)),
]
invisible = (
    st.characters(categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"])
    | st.characters(categories=["Zs"]).filter(lambda c: c != " ")
    | st.sampled_from(IGNORABLE_MARKS)
)
visible = st.characters(
    codec="utf-8", exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"]
).filter(lambda c: c not in IGNORABLE_MARKS)


@given(
    before=st.text(visible, max_size=60),
    bad=invisible,
    after=st.text(visible, max_size=60),
)
def test_a_conversation_id_with_an_invisible_or_format_character_is_refused(
    before: str, bad: str, after: str
) -> None:
    """Bidi overrides, zero-width characters, the BOM, controls, separators other than the
    ASCII space and the other ignorables are refused, wherever they sit in the id."""
    with pytest.raises(InvalidChatMessage, match=f"at index {len(before)}$"):
        checked_conversation_id(before + bad + after)


@pytest.mark.parametrize(
    "bad", ["\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u00ad", "\u00a0", "\u2028"]
)
def test_the_known_spoofing_characters_are_named_by_code_point(bad: str) -> None:
    """The refusal names the character by its code point, as it would not show in a terminal."""
    with pytest.raises(InvalidChatMessage, match=f"U\\+{ord(bad):04X} at index 1"):
        checked_conversation_id(f"c{bad}1")


@given(st.text(visible | st.just(" "), min_size=1, max_size=MAX_CONVERSATION_ID_LENGTH))
def test_a_conversation_id_of_visible_characters_and_spaces_is_kept_as_is(value: str) -> None:
    """Letters, digits, marks, symbols and punctuation of any script, and ASCII spaces, are
    valid and come back unchanged (a trailing space makes another conversation)."""
    assert checked_conversation_id(value) == value
    assert all(unicodedata.category(c)[0] != "C" for c in value)
