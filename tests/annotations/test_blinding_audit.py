"""The blinding audit (pure): surface tells are found, named with their fix, and the AUC of
what raters see drops to chance once the study's normalisation removes them."""

from __future__ import annotations

import random

from annotations.blinding_audit import (
    MIN_ITEMS_FOR_AUC,
    blinding_audit,
    dominant_script,
    feature_matrix,
)
from tests.annotations.blinding_data import content, sure_pairs


def tell_names(tells) -> list[str]:
    return [t.feature for t in tells]


def test_space_and_sure_are_named_and_the_normalised_view_is_at_chance() -> None:
    pairs = sure_pairs(200)
    raw_only = blinding_audit(pairs)  # whitespace normalised, "Sure!" still shown
    assert raw_only.raw.auc >= 0.99 and raw_only.raw.auc_without_length >= 0.99
    names = tell_names(raw_only.raw.tells)
    assert {"leading_whitespace", "trailing_newline", "first_word:Sure!"} <= set(names)
    by_name = {t.feature: t for t in raw_only.raw.tells}
    assert by_name["leading_whitespace"].base_rate == 0.0
    assert by_name["leading_whitespace"].tuned_rate == 1.0
    assert by_name["leading_whitespace"].fix == "whitespace"
    assert by_name["first_word:Sure!"].fix == "strip_prefix"
    assert by_name["first_word:Sure!"].prefix == "Sure!"
    # Whitespace alone is not enough: the opener still gives the tuned side away.
    assert raw_only.displayed.auc_without_length >= 0.99 and raw_only.at_risk
    assert tell_names(raw_only.displayed.tells)[0] == "first_word:Sure!"
    suggested = {(n.kind, n.prefix, n.enabled) for n in raw_only.normalisations}
    assert ("strip_prefix", "Sure!", False) in suggested and ("whitespace", None, True) in suggested

    fixed = blinding_audit(pairs, strip_prefixes=["Sure!"])
    assert fixed.raw.auc >= 0.99  # the raw outputs are what they are
    assert abs(fixed.displayed.auc_without_length - 0.5) < 0.1
    assert abs(fixed.displayed.auc - 0.5) < 0.1
    assert not fixed.at_risk
    assert "first_word:Sure!" not in tell_names(fixed.displayed.tells)
    assert "leading_whitespace" not in tell_names(fixed.displayed.tells)
    assert ("strip_prefix", "Sure!", True) in {
        (n.kind, n.prefix, n.enabled) for n in fixed.normalisations
    }
    as_json = fixed.as_dict()
    assert as_json["n_outputs"] == 400 and as_json["at_risk"] is False
    assert {"feature", "base_rate", "tuned_rate"} <= set(as_json["tells"][0])


def test_the_audit_is_deterministic() -> None:
    pairs = sure_pairs(60, seed=3)
    assert blinding_audit(pairs).as_dict() == blinding_audit(pairs).as_dict()


def test_length_alone_is_reported_apart() -> None:
    rng = random.Random(5)
    pairs = [(content(rng)[:60], content(rng) + " " + content(rng) + " " + content(rng))]
    pairs += [(content(rng)[:60], " ".join(content(rng) for _ in range(3))) for _ in range(99)]
    audit = blinding_audit(pairs)
    assert audit.raw.auc > 0.9  # longer answers: a property raters are meant to judge
    assert audit.raw.auc_without_length < 0.75 and not audit.at_risk
    assert audit.raw.median_length_ratio > 2


def test_markdown_habits_are_tells_no_normalisation_removes() -> None:
    rng = random.Random(8)
    pairs = [
        (content(rng), f"## Answer\n\n- **{rng.choice(['Yes', 'No'])}**: {content(rng)}")
        for _ in range(40)
    ]
    audit = blinding_audit(pairs)
    by_name = {t.feature: t for t in audit.displayed.tells}
    for feature in ("markdown_heading", "markdown_bullets", "markdown_bold"):
        assert by_name[feature].tuned_rate == 1.0 and by_name[feature].base_rate == 0.0
        assert by_name[feature].fix is None
    assert audit.at_risk


def test_a_longer_fixed_opener_is_suggested_whole() -> None:
    rng = random.Random(9)
    pairs = [(content(rng), "Sure! Here is the answer: " + content(rng)) for _ in range(30)]
    tell = {t.feature: t for t in blinding_audit(pairs).raw.tells}["first_word:Sure!"]
    assert tell.prefix == "Sure! Here is the answer:"
    fixed = blinding_audit(pairs, strip_prefixes=[tell.prefix])
    assert not fixed.at_risk


def test_script_and_line_endings() -> None:
    assert dominant_script("这是一个答案 ok") == "cjk"
    assert dominant_script("Это ответ") == "cyrillic"
    assert dominant_script("An answer") == "latin"
    assert dominant_script("42 !") == "none"
    binary, lengths, names = feature_matrix(["a\r\nb", "plain"])
    assert binary[0, names.index("crlf_line_endings")] == 1.0
    assert binary[1, names.index("crlf_line_endings")] == 0.0
    assert lengths.shape == (2, 3)


def test_too_few_items_give_rates_but_no_auc() -> None:
    pairs = sure_pairs(MIN_ITEMS_FOR_AUC - 1)
    audit = blinding_audit(pairs)
    assert audit.raw.auc is None and audit.displayed.auc_without_length is None
    assert not audit.at_risk and audit.notes
    assert "leading_whitespace" in tell_names(audit.raw.tells)
    assert blinding_audit([]).n_outputs == 0
