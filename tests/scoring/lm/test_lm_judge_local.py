"""Local transformers judge on the tiny model: logprob reading, batching, generate mode."""

from __future__ import annotations

import math

import pytest

from scoring.lm.judge import judge_pairs
from scoring.lm.judge_local import LocalJudge
from scoring.lm.judge_prompts import combine_for_tuned, get_template

torch = pytest.importorskip("torch")

# The tiny model has a 128-token context, so the tests use short study-edited templates (which
# also exercises template editing); the full MT-Bench prompt is covered by the too-long test.
PAIRWISE = get_template("mtbench_pairwise").with_text(
    system="Judge the answers.",
    user="Question: {question}\nA: {answer_1}\nB: {answer_2}\nVerdict:",
    name="tiny_pairwise",
)
GEVAL = get_template("geval_absolute").with_text(
    user="Question: {question}\nAnswer: {answer_1}\nRating:", name="tiny_geval"
)
QUESTIONS = [
    ("What is two plus two?", "It is 4.", "The answer is five because the river measures data."),
    ("Why is the sky blue?", "Rayleigh scattering.", "No idea."),
    ("Write a haiku about rain.", "Rain falls on the roof, the old library sleeps.", "Rain."),
]


def _judge(tiny_lm, template=PAIRWISE, **kwargs):
    return LocalJudge(model=tiny_lm.model, tokenizer=tiny_lm.tokenizer, template=template, **kwargs)


def _manual_prompt_ids(tokenizer, rendered):
    """Chat template + answer prefix, tokenized without the judge's helpers."""
    messages = [{"role": "user", "content": rendered.user}]
    if rendered.system:
        messages.insert(0, {"role": "system", "content": rendered.system})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text + rendered.answer_prefix, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id  # the chat template writes BOS itself
    return ids


def test_probabilities_equal_softmax_over_gathered_logits(tiny_lm):
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    judge = _judge(tiny_lm)
    prompts = [PAIRWISE.render(q, a, b) for q, a, b in QUESTIONS]
    answers = judge.judge(prompts)
    candidate_ids = tok.convert_tokens_to_ids(["A", "B", "C"])
    for rendered, answer in zip(prompts, answers, strict=True):
        assert answer.source == "logprobs"
        assert answer.error is None
        assert math.fsum(answer.probs.values()) == pytest.approx(1.0, abs=1e-9)
        ids = _manual_prompt_ids(tok, rendered)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        gathered = logits[candidate_ids].double()
        manual = torch.exp(gathered - gathered.max())
        manual = (manual / manual.sum()).tolist()
        assert [answer.probs[k] for k in "ABC"] == pytest.approx(manual, abs=1e-5)
        full = torch.log_softmax(logits.double(), dim=-1)[candidate_ids].exp().sum().item()
        assert answer.candidate_mass == pytest.approx(full, rel=1e-4)


def test_left_padded_batch_equals_one_prompt_at_a_time(tiny_lm):
    prompts = [PAIRWISE.render(q, a, b) for q, a, b in QUESTIONS]
    lengths = [len(_judge(tiny_lm).encode_prompt(p, with_prefix=True)) for p in prompts]
    assert max(lengths) - min(lengths) >= 5  # padding really happens
    batched = _judge(tiny_lm, max_tokens_per_batch=100_000).judge(prompts)
    single = _judge(tiny_lm, max_tokens_per_batch=1).judge(prompts)
    for b, s in zip(batched, single, strict=True):
        assert b.probs == pytest.approx(s.probs, abs=1e-5)


def test_multi_token_labels_are_scored_as_whole_continuations(tiny_lm):
    # The tiny tokenizer splits "10" into "1", "0": first tokens collide, so each label's
    # continuation ("7]]", "10]]") is scored with teacher forcing.
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    judge = _judge(tiny_lm, template=GEVAL)
    rendered = GEVAL.render("Why is the sky blue?", "Rayleigh scattering.")
    (answer,) = judge.judge([rendered])
    assert math.fsum(answer.probs.values()) == pytest.approx(1.0)
    ids = _manual_prompt_ids(tok, rendered)

    def seq_logprob(continuation: str) -> float:
        cont = tok(continuation, add_special_tokens=False)["input_ids"]
        full = torch.tensor([ids + cont])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=full).logits[0].double(), dim=-1)
        return sum(logp[len(ids) - 1 + k, t].item() for k, t in enumerate(cont))

    manual = {lab: math.exp(seq_logprob(f"{lab}]]")) for lab in GEVAL.labels}
    total = sum(manual.values())
    for lab in GEVAL.labels:
        assert answer.probs[lab] == pytest.approx(manual[lab] / total, rel=1e-4, abs=1e-7)
    assert 1.0 <= GEVAL.expected_score(answer.probs) <= 10.0


def test_generate_mode_batches_like_single_and_parses_strictly(tiny_lm):
    prompts = [PAIRWISE.render(q, a, b) for q, a, b in QUESTIONS]
    batched = _judge(tiny_lm, mode="generate", max_new_tokens=4).generate(prompts)
    single = _judge(tiny_lm, mode="generate", max_new_tokens=4, max_tokens_per_batch=1).generate(
        prompts
    )
    assert batched == single
    answers = _judge(tiny_lm, mode="generate", max_new_tokens=4).judge(prompts)
    for text, answer in zip(batched, answers, strict=True):
        assert answer.source == "text"
        assert answer.text == text
        assert (answer.probs is None) == (answer.error is not None)


def test_prompt_longer_than_context_is_reported_not_truncated(tiny_lm):
    judge = _judge(tiny_lm, template="mtbench_pairwise")
    (answer,) = judge.judge([judge.template.render("q", "a", "b")])
    assert answer.probs is None
    assert "context is 128 tokens" in answer.error


def test_judge_pairs_local_swaps_and_maps_to_tuned(tiny_lm):
    judge = _judge(tiny_lm)
    pairs = [(q, base, tuned) for q, tuned, base in QUESTIONS]
    results = judge_pairs(pairs, judge)
    assert len(results) == len(pairs)
    for (q, base, tuned), res in zip(pairs, results, strict=True):
        assert set(res.order_probabilities) == {"tuned_first", "base_first"}
        (tf,) = judge.judge([PAIRWISE.render(q, tuned, base)])
        assert res.p_first["tuned_first"] == pytest.approx(PAIRWISE.p_first(tf.probs), abs=1e-6)
        expected = combine_for_tuned(res.p_first["tuned_first"], res.p_first["base_first"])
        assert res.p_tuned == pytest.approx(expected.p_tuned)
        assert res.verdict == expected.verdict
        assert res.position_bias == expected.position_bias
        assert res.judge_id.startswith("local:")
        assert res.template == "tiny_pairwise"


def test_lazy_loading_through_settings(tiny_model_dir):
    from scoring.lm.judge import build_judge

    judge = build_judge(
        {"backend": "local", "model": tiny_model_dir, "template": GEVAL, "device": "cpu"}
    )
    assert judge._model is None  # nothing loaded until first use
    results = judge_pairs([("Why is the sky blue?", "No idea.", "Rayleigh scattering.")], judge)
    assert 0.0 <= results[0].p_tuned <= 1.0
    assert set(results[0].expected_scores) == {"tuned", "base"}
