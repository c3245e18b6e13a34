"""The judge front: settings validation and pair handling with a stub backend (no torch)."""

from __future__ import annotations

import pytest

from scoring.lm.errors import ModelUnavailableError, TemplateError
from scoring.lm.judge import JudgePair, build_judge, judge_pairs
from scoring.lm.judge_prompts import JudgeAnswer, get_template, p_better


class StubJudge:
    """Returns fixed label probabilities chosen from the rendered text."""

    backend = "stub"
    judge_id = "stub:1"

    def __init__(self, template, rule):
        self.template = get_template(template) if isinstance(template, str) else template
        self.rule = rule
        self.prompts = []

    def judge(self, prompts):
        self.prompts.extend(prompts)
        return [JudgeAnswer(self.rule(p.user), "logprobs") for p in prompts]


def _first_answer(user: str) -> str:
    return user.split("[The Start of Assistant A's Answer]\n")[1].split("\n")[0]


def test_pairwise_mapping_tuned_first_vs_base_first():
    # Prefers "GOOD" strongly, and has a mild first-position bias.
    def rule(user):
        return {"A": 0.8, "B": 0.2} if "GOOD" in _first_answer(user) else {"A": 0.4, "B": 0.6}

    stub = StubJudge("mtbench_pairwise", rule)
    (res,) = judge_pairs([JudgePair("q", base="meh", tuned="GOOD")], stub)
    assert res.p_first == {"tuned_first": pytest.approx(0.8), "base_first": pytest.approx(0.4)}
    assert res.p_tuned == pytest.approx((0.8 + 0.6) / 2)
    assert (res.verdict, res.position_bias) == ("tuned", False)
    assert res.order_probabilities["tuned_first"] == {"A": 0.8, "B": 0.2}
    assert len(stub.prompts) == 2
    (res,) = judge_pairs([("q", "GOOD", "meh")], stub)
    assert res.p_tuned == pytest.approx((0.4 + 0.2) / 2)
    assert res.verdict == "base"


def test_unswapped_judging_uses_one_order():
    stub = StubJudge("mtbench_pairwise", lambda user: {"A": 0.9, "B": 0.1})
    results = judge_pairs([(f"q{i}", "b", "t") for i in range(20)], stub, swap=False)
    assert len(stub.prompts) == 20
    orders = {next(iter(r.p_first)) for r in results}
    assert orders == {"tuned_first", "base_first"}  # the content hash spreads the orders
    for r in results:
        first_is_tuned = "tuned_first" in r.p_first
        assert r.p_tuned == pytest.approx(0.9 if first_is_tuned else 0.1)
        assert not r.position_bias


def test_absolute_templates_grade_each_answer():
    def rule(user):
        return {"5": 0.7, "4": 0.3} if "GOOD" in user else {"2": 0.5, "3": 0.5}

    stub = StubJudge("prometheus_absolute", rule)
    (res,) = judge_pairs([("q", "meh", "GOOD")], stub)
    assert res.expected_scores == {"tuned": pytest.approx(4.7), "base": pytest.approx(2.5)}
    assert res.p_tuned == pytest.approx(1.0)
    assert res.verdict == "tuned"
    assert set(res.order_probabilities) == {"tuned", "base"}
    assert p_better({4.0: 1.0}, {4.0: 1.0}) == 0.5


def test_build_judge_validates_settings():
    with pytest.raises(ModelUnavailableError, match="backend"):
        build_judge({})
    with pytest.raises(ModelUnavailableError, match="model"):
        build_judge({"backend": "openai", "base_url": "http://x/v1"})
    with pytest.raises(ValueError, match="unknown judge backend"):
        build_judge({"backend": "anthropic", "model": "m"})
    with pytest.raises(ValueError, match="unknown judge setting"):
        build_judge({"backend": "openai", "model": "m", "top_logprob": 5})
    with pytest.raises(ValueError, match="unknown judge setting"):
        build_judge({"backend": "local", "model": "m", "base_url": "http://x"})
    with pytest.raises(TemplateError):
        build_judge({"backend": "openai", "model": "m", "template": "nope"})
    judge = build_judge(
        {
            "backend": "openai",
            "model": "m",
            "base_url": "http://127.0.0.1:9/v1",
            "template": {"base": "mtbench_pairwise", "system": "Be brief."},
        }
    )
    assert judge.template.system == "Be brief."


def test_local_judge_builds_lazily_and_reports_missing_model(tmp_path):
    pytest.importorskip("torch")
    judge = build_judge({"backend": "local", "model": str(tmp_path / "missing" / "model")})
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        judge_pairs([("q", "a", "b")], judge)


def test_bad_pair_shape():
    stub = StubJudge("mtbench_pairwise", lambda user: {"A": 1.0})
    with pytest.raises(ValueError, match="a pair is"):
        judge_pairs([("q", "a")], stub)
