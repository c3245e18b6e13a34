"""The display normalisation (pure): the same rules for both sides; raw text untouched."""

from __future__ import annotations

import pytest

from annotations.blinding import (
    display_pairs,
    display_text,
    strip_prefixes_from,
    strip_prefixes_problem,
)


def test_whitespace_line_endings_and_nfc_are_normalised() -> None:
    decomposed = "Cafe\u0301"  # e + combining acute: NFC composes it to one character
    assert display_text(f"  {decomposed}\r\nline two\rthree \n\n") == "Café\nline two\nthree"
    assert display_text("\tAnswer.\n") == display_text("Answer.") == "Answer."


def test_inner_whitespace_and_markdown_stay() -> None:
    text = "# Title\n\n- item  one\n\n```\ncode\n```"
    assert display_text(text) == text


def test_prefixes_are_stripped_only_when_listed_and_from_either_side() -> None:
    base, tuned = "Paris is the capital.", " Sure! Paris is the capital.\n"
    assert display_text(tuned) == "Sure! Paris is the capital."
    shown = display_pairs([(base, tuned)], strip_prefixes=["Sure!"])
    assert shown == [("Paris is the capital.", "Paris is the capital.")]
    # The same list applies to the base side too.
    assert display_text("Sure! Base says so.", strip_prefixes=["Sure!"]) == "Base says so."
    # A prefix is compared after the same normalisation, is case-sensitive, applied in order.
    assert display_text("Sure!\r\n\r\nOk.", strip_prefixes=[" Sure! "]) == "Ok."
    assert display_text("sure! ok", strip_prefixes=["Sure!"]) == "sure! ok"
    assert display_text("Sure! Here is: x", strip_prefixes=["Sure!", "Here is:"]) == "x"


def test_a_prefix_that_is_the_whole_text_stays() -> None:
    assert display_text(" Sure!\n", strip_prefixes=["Sure!"]) == "Sure!"


def test_prefix_list_validation_and_reading() -> None:
    assert strip_prefixes_problem(["Sure!", "Certainly!"]) is None
    assert strip_prefixes_problem("Sure!") == "must be a list of strings"
    assert strip_prefixes_problem(["  "]) == "item 0 is blank"
    assert strip_prefixes_problem(["ok", 3]) == "item 1 must be a string, got int"
    assert "at most 20" in strip_prefixes_problem(["x"] * 21)
    assert "longer than 200" in strip_prefixes_problem(["x" * 201])
    assert strip_prefixes_from('["Sure!"]') == ("Sure!",)
    assert strip_prefixes_from(["Sure!"]) == ("Sure!",)
    assert strip_prefixes_from("") == strip_prefixes_from(None) == ()


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_blank_texts_do_not_break(text: str) -> None:
    assert display_text(text, strip_prefixes=["Sure!"]) == ""
