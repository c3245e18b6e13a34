"""Judge templates, strict parsing and the position-swap logic (pure Python, no torch)."""

from __future__ import annotations

import pytest

from scoring.lm.errors import JudgeParseError, TemplateError
from scoring.lm.judge_prompts import (
    DEFAULT_RUBRIC,
    MT_BENCH_PAIRWISE_SYSTEM_ORIGINAL,
    TEMPLATES,
    JudgeAnswer,
    combine_for_tuned,
    combine_swapped,
    get_template,
    p_better,
    parse_pairwise_answer,
    parse_prometheus_result,
    template_from_settings,
    tuned_probability,
)

# -- swap logic ---------------------------------------------------------------------------------


def test_orders_agree_on_a():
    v = combine_swapped(0.8, 0.3)  # A first: A wins; B first: second (A) wins
    assert v.winner == "A"
    assert not v.position_bias
    assert v.p_a == pytest.approx((0.8 + 0.7) / 2)
    assert v.p_b == pytest.approx(1 - v.p_a)


def test_orders_agree_on_b():
    v = combine_swapped(0.2, 0.9)
    assert v.winner == "B"
    assert v.p_a == pytest.approx((0.2 + 0.1) / 2)
    assert not v.position_bias


@pytest.mark.parametrize(("p_ab", "p_ba"), [(0.8, 0.7), (0.3, 0.2)])
def test_disagreement_is_tie_and_position_bias(p_ab, p_ba):
    v = combine_swapped(p_ab, p_ba)  # the same *position* won both times
    assert v.winner == "tie"
    assert v.position_bias
    assert v.p_a == pytest.approx((p_ab + 1 - p_ba) / 2)


def test_one_order_tie_is_tie_without_bias():
    v = combine_swapped(0.5, 0.3)
    assert (v.winner, v.position_bias) == ("tie", False)
    margin = combine_swapped(0.55, 0.45, tie_margin=0.1)
    assert (margin.winner, margin.position_bias) == ("tie", False)


def test_tuned_first_and_base_first_mapping():
    # Tuned shown first and judged better (0.9); base shown first and judged worse (0.2).
    out = combine_for_tuned(p_first_tuned_first=0.9, p_first_base_first=0.2)
    assert out.verdict == "tuned"
    assert out.p_tuned == pytest.approx((0.9 + 0.8) / 2)
    assert not out.position_bias
    out = combine_for_tuned(p_first_tuned_first=0.1, p_first_base_first=0.95)
    assert out.verdict == "base"
    assert out.p_tuned == pytest.approx((0.1 + 0.05) / 2)
    biased = combine_for_tuned(0.9, 0.9)  # "first is better" whatever is shown first
    assert (biased.verdict, biased.position_bias) == ("tie", True)
    assert tuned_probability(0.7, tuned_shown_first=True) == pytest.approx(0.7)
    assert tuned_probability(0.7, tuned_shown_first=False) == pytest.approx(0.3)


def test_swap_rejects_invalid_probabilities():
    with pytest.raises(ValueError):
        combine_swapped(1.2, 0.3)
    with pytest.raises(ValueError):
        combine_swapped(float("nan"), 0.3)


def test_p_first_counts_tie_half_and_renormalises():
    mt = TEMPLATES["mtbench_pairwise"]
    assert mt.p_first({"A": 0.5, "B": 0.2, "C": 0.3}) == pytest.approx(0.65)
    assert mt.p_first({"A": 0.01, "B": 0.01}) == pytest.approx(0.5)
    alpaca = TEMPLATES["alpacaeval_pairwise"]
    assert alpaca.p_first({"m": 2.0, "M": 1.0}) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        mt.p_first({"A": 0.0})


def test_absolute_scores_and_p_better():
    geval = TEMPLATES["geval_absolute"]
    assert geval.expected_score({"7": 0.5, "9": 0.5}) == pytest.approx(8.0)
    assert p_better({4.0: 1.0}, {3.0: 1.0}) == 1.0
    assert p_better({3.0: 1.0}, {3.0: 1.0}) == 0.5
    assert p_better({2.0: 0.5, 4.0: 0.5}, {3.0: 1.0}) == pytest.approx(0.5)


# -- parsing ------------------------------------------------------------------------------------


def test_parse_pairwise_answer_strict():
    assert parse_pairwise_answer("Assistant A is clearer. [[A]]") == "A"
    assert parse_pairwise_answer("[[C]]") == "C"
    assert parse_pairwise_answer("[[B]] ... so again [[B]]") == "B"  # same verdict twice is fine
    for bad in ["A is better", "[[A]] or [[B]]", "[[D]]", "[A]", ""]:
        with pytest.raises(JudgeParseError):
            parse_pairwise_answer(bad)


def test_parse_prometheus_results():
    assert parse_prometheus_result("Good feedback. [RESULT] 4") == 4
    assert parse_prometheus_result("[RESULT]5") == 5
    assert parse_prometheus_result("Feedback... [RESULT] B", relative=True) == "B"
    for bad in ["[RESULT] 6", "[RESULT] 10", "score: 4", "[RESULT] 3 [RESULT] 4"]:
        with pytest.raises(JudgeParseError):
            parse_prometheus_result(bad)


def test_parse_other_formats():
    geval = TEMPLATES["geval_absolute"]
    assert geval.parse("[[10]]") == "10"
    assert geval.parse("Rating: [[1]]") == "1"
    alpaca = TEMPLATES["alpacaeval_pairwise"]
    assert alpaca.parse(" M\n") == "M"
    with pytest.raises(JudgeParseError):
        alpaca.parse("m or M")


def test_label_of_token_and_answer_from_text():
    mt = TEMPLATES["mtbench_pairwise"]
    assert mt.label_of_token(" A") == "A"
    assert mt.label_of_token("A]]") == "A"
    assert mt.label_of_token("[[B", head="[[") == "B"
    assert mt.label_of_token("The") is None
    geval = TEMPLATES["geval_absolute"]
    assert geval.label_of_token("10") == "10"
    assert geval.label_of_token("1") == "1"
    ok = JudgeAnswer.from_text(mt, "[[B]]")
    assert ok.probs == {"A": 0.0, "B": 1.0, "C": 0.0}
    assert ok.source == "text"
    bad = JudgeAnswer.from_text(mt, "dunno")
    assert bad.probs is None
    assert "no verdict" in bad.error


# -- templates ----------------------------------------------------------------------------------


def test_all_builtin_templates_render():
    for name, tpl in TEMPLATES.items():
        rendered = tpl.render("Q?", "first {answer}", "second", reference="ref", rubric=None)
        assert "Q?" in rendered.user
        assert "first {answer}" in rendered.user  # braces inside answers are kept verbatim
        assert rendered.template_name == name
        if tpl.kind == "pairwise":
            assert "second" in rendered.user


def test_mtbench_texts():
    assert "After providing your explanation" in MT_BENCH_PAIRWISE_SYSTEM_ORIGINAL
    explained = get_template("mtbench_pairwise_explained")
    assert explained.system == MT_BENCH_PAIRWISE_SYSTEM_ORIGINAL
    assert "Do not write an explanation" in get_template("mtbench_pairwise").system
    r = get_template("mtbench_pairwise").render("q", "a1", "a2")
    assert r.answer_prefix == "[["
    assert r.messages()[0]["role"] == "system"


def test_prometheus_rubric_rendering():
    absolute = get_template("prometheus_absolute").render("q", "a")
    assert "Score 5: " + DEFAULT_RUBRIC.score_descriptions[4] in absolute.user
    relative = get_template("prometheus_relative").render("q", "a", "b")
    assert DEFAULT_RUBRIC.criteria in relative.user
    assert "Score 1:" not in relative.user
    custom = get_template("prometheus_absolute").render("q", "a", rubric="[Is it short?]")
    assert "[Is it short?]" in custom.user


def test_reference_and_answer_2_required_when_used():
    with pytest.raises(TemplateError, match="reference"):
        get_template("mtbench_pairwise_reference").render("q", "a", "b")
    with pytest.raises(TemplateError, match="answer_2"):
        get_template("mtbench_pairwise").render("q", "a")


def test_custom_template_text_is_validated():
    base = get_template("mtbench_pairwise")
    custom = base.with_text(user="Q: {question}\nA: {answer_1}\nB: {answer_2}\n{{json}}")
    assert custom.name == "mtbench_pairwise+custom"
    assert custom.render("q", "x", "y").user.endswith("{json}")
    assert custom.fingerprint() != base.fingerprint()
    with pytest.raises(TemplateError, match="unknown placeholder"):
        base.with_text(user="{question} {answer_1} {answer_2} {foo}")
    with pytest.raises(TemplateError, match="required placeholder"):
        base.with_text(user="{question} {answer_1}")
    with pytest.raises(TemplateError, match="unknown placeholder"):
        base.with_text(user="{question!r} {answer_1} {answer_2}")
    with pytest.raises(TemplateError, match="malformed braces"):
        base.with_text(user="{question} {answer_1} {answer_2} {")
    with pytest.raises(TemplateError, match="answer_2"):
        get_template("geval_absolute").with_text(user="{question} {answer_1} {answer_2}")


def test_template_from_settings():
    assert template_from_settings("geval_absolute") is TEMPLATES["geval_absolute"]
    t = template_from_settings(
        {"base": "alpacaeval_pairwise", "user": "{question}|{answer_1}|{answer_2}", "name": "x"}
    )
    assert (t.name, t.labels) == ("x", ("m", "M"))
    with pytest.raises(TemplateError, match="unknown judge template"):
        template_from_settings("nope")
    with pytest.raises(TemplateError, match="unknown template setting"):
        template_from_settings({"usr": "typo"})
