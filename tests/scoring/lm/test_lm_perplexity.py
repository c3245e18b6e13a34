"""Batched, sliding-window perplexity against independent plain loops."""

from __future__ import annotations

import math

import pytest

from scoring.lm.perplexity import EXCLUDED_EMPTY, EXCLUDED_TOO_SHORT, compute_perplexity

torch = pytest.importorskip("torch")

SHORT = "The model explains the question carefully."
MEDIUM = (
    "What is the capital of France? The teacher describes the main idea in detail. "
    "It took 12 days. Verdict: [[A]]"
)
LONG_UNDER_WINDOW = " ".join(
    ["The reviewer compares the evidence step by step.", "A student reads the recipe quickly."] * 4
)
# Well over n_positions=128 tokens, so the stride loop needs several windows.
VERY_LONG = " ".join(
    f"Line {i}: the engineer tests the code and the river measures the weather." for i in range(30)
)


def _manual_log_softmax(row):
    """log_softmax written out (float64): x - max - log(sum(exp(x - max)))."""
    row = row.double()
    shifted = row - row.max()
    return shifted - torch.log(torch.exp(shifted).sum())


def _ids(tokenizer, text, add_bos=True):
    ids = tokenizer.encode(text, add_special_tokens=False)
    return [tokenizer.bos_token_id, *ids] if add_bos else ids


def _plain_nll(model, ids):
    """One text, one forward pass, a Python loop over positions; returns (nll_sum, n_tokens)."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    nll = 0.0
    for t in range(1, len(ids)):
        nll -= _manual_log_softmax(logits[t - 1])[ids[t]].item()
    return nll, len(ids) - 1


def _plain_stride_nll(model, ids, window, stride):
    """The HF guide's stride loop, written independently with per-token manual scoring."""
    nll, count, prev_end = 0.0, 0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + window, len(ids))
        trg_len = end - prev_end
        chunk = ids[begin:end]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([chunk])).logits[0]
        for pos in range(len(chunk) - trg_len, len(chunk)):
            if pos == 0:
                continue  # the very first token has no context
            nll -= _manual_log_softmax(logits[pos - 1])[chunk[pos]].item()
            count += 1
        prev_end = end
        if end == len(ids):
            break
    return nll, count


def test_matches_plain_loop(tiny_lm):
    texts = [SHORT, MEDIUM, LONG_UNDER_WINDOW]
    report = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, texts)
    for text, res in zip(texts, report.results, strict=True):
        ids = _ids(tiny_lm.tokenizer, text)
        assert len(ids) <= 128
        nll, n = _plain_nll(tiny_lm.model, ids)
        assert res.n_tokens == n == len(ids) - 1  # BOS is context only, never a target
        assert res.nll_sum == pytest.approx(nll, rel=1e-4)
        assert res.perplexity == pytest.approx(math.exp(nll / n), rel=1e-4)


def test_batched_equals_unbatched_with_padding(tiny_lm):
    texts = ["Why is the sky blue?", LONG_UNDER_WINDOW, SHORT, MEDIUM, "Rating: [[7]]"]
    batched = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, texts, max_tokens_per_batch=4096)
    single = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, texts, max_tokens_per_batch=1)
    for b, s in zip(batched.results, single.results, strict=True):
        assert b.index == s.index
        assert b.n_tokens == s.n_tokens
        assert b.perplexity == pytest.approx(s.perplexity, rel=1e-4)
    lengths = [r.n_tokens for r in batched.results]
    assert max(lengths) > 5 * min(lengths)  # padding really matters in the batched run


@pytest.mark.parametrize("stride", [48, 127])
def test_sliding_window_matches_plain_stride_recipe(tiny_lm, stride):
    ids = _ids(tiny_lm.tokenizer, VERY_LONG)
    assert len(ids) > 3 * 128
    report = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, [SHORT, VERY_LONG], stride=stride)
    nll, n = _plain_stride_nll(tiny_lm.model, ids, window=128, stride=stride)
    res = report.results[1]
    assert report.window == 128
    assert res.n_tokens == n == len(ids) - 1  # every token scored exactly once
    assert res.perplexity == pytest.approx(math.exp(nll / n), rel=1e-4)


def test_corpus_and_mean_aggregates_follow_their_definitions(tiny_lm):
    # A tiny high-perplexity text next to a long in-domain one: the two aggregates must differ.
    texts = ["zq xj vk", LONG_UNDER_WINDOW]
    report = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, texts)
    a, b = report.results
    mean = (a.perplexity + b.perplexity) / 2
    corpus = math.exp((a.nll_sum + b.nll_sum) / (a.n_tokens + b.n_tokens))
    assert report.mean_per_text_perplexity == pytest.approx(mean, rel=1e-12)
    assert report.corpus_perplexity_token_weighted == pytest.approx(corpus, rel=1e-12)
    assert report.total_tokens == a.n_tokens + b.n_tokens
    assert abs(mean - corpus) / corpus > 0.05


def test_empty_and_unscorable_texts_are_excluded_with_reason(tiny_lm):
    report = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, ["", SHORT, ""])
    assert [r.excluded for r in report.results] == [EXCLUDED_EMPTY, None, EXCLUDED_EMPTY]
    assert math.isnan(report.results[0].perplexity)
    assert report.n_excluded == 2
    assert report.mean_per_text_perplexity == pytest.approx(report.results[1].perplexity)

    # Without BOS the first token is context only, so a one-token text has nothing to score.
    one_token = "A"
    assert len(tiny_lm.tokenizer.encode(one_token, add_special_tokens=False)) == 1
    no_bos = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, [one_token, SHORT], add_bos=False)
    assert no_bos.results[0].excluded == EXCLUDED_TOO_SHORT
    assert no_bos.results[1].n_tokens == len(_ids(tiny_lm.tokenizer, SHORT, add_bos=False)) - 1

    nothing = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, [""])
    assert math.isnan(nothing.corpus_perplexity_token_weighted)
    assert math.isnan(nothing.mean_per_text_perplexity)


def test_rejects_bad_arguments(tiny_lm):
    with pytest.raises(ValueError, match="stride"):
        compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, [SHORT], stride=128)
    with pytest.raises(ValueError, match="expected str"):
        compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, [None])


def _equal_length_texts(tokenizer, n):
    """``n`` distinct corpus lines that all tokenize to the same number of tokens."""
    from tests.tiny_model import tiny_corpus

    by_length: dict[int, list[str]] = {}
    for line in dict.fromkeys(tiny_corpus(400, seed=3)):
        by_length.setdefault(len(_ids(tokenizer, line)), []).append(line)
    group = max(by_length.values(), key=len)
    assert len(group) >= n
    return group[:n]


def test_equal_length_batch_runs_without_mask_and_matches(tiny_lm):
    texts = _equal_length_texts(tiny_lm.tokenizer, 6)
    masks = []
    hook = tiny_lm.model.base_model.register_forward_pre_hook(
        lambda _m, _a, kw: masks.append(kw.get("attention_mask")), with_kwargs=True
    )
    try:
        batched = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, texts)
    finally:
        hook.remove()
    assert masks and all(m is None for m in masks)  # one batch of equal rows: causal fast path
    mixed = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, [*texts, SHORT + " " + MEDIUM])
    for text, res, res_mixed in zip(texts, batched.results, mixed.results, strict=False):
        nll, n = _plain_nll(tiny_lm.model, _ids(tiny_lm.tokenizer, text))
        assert res.n_tokens == n
        assert res.nll_sum == pytest.approx(nll, rel=1e-5)
        assert res_mixed.nll_sum == pytest.approx(nll, rel=1e-5)  # padded and masked


def test_head_on_scored_positions_equals_full_logits_path(tiny_lm, monkeypatch):
    from scoring.lm import perplexity as ppl

    texts = ["Why is the sky blue?", LONG_UNDER_WINDOW, SHORT, VERY_LONG, MEDIUM]
    ids = _ids(tiny_lm.tokenizer, SHORT)
    assert ppl._split_head(tiny_lm.model, ids) is not None  # GPT-2: logits = lm_head(hidden)
    split = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, texts, stride=64)
    monkeypatch.setattr(ppl, "_split_head", lambda model, probe: None)
    full = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, texts, stride=64)
    for a, b in zip(split.results, full.results, strict=True):
        assert a.n_tokens == b.n_tokens
        assert a.nll_sum == pytest.approx(b.nll_sum, rel=1e-5)


class _SoftCapped(torch.nn.Module):
    """The tiny model with Gemma-2-style logit soft-capping after its LM head."""

    def __init__(self, inner, cap):
        super().__init__()
        self.inner = inner
        self.cap = cap
        self.config = inner.config

    @property
    def base_model(self):
        return self.inner.base_model

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        from types import SimpleNamespace

        logits = self.inner(input_ids=input_ids, attention_mask=attention_mask).logits
        return SimpleNamespace(logits=self.cap * torch.tanh(logits / self.cap))


def test_models_that_post_process_logits_keep_the_full_logits_path(tiny_lm):
    from scoring.lm import perplexity as ppl

    capped = _SoftCapped(tiny_lm.model, cap=2.0).eval()
    assert ppl._split_head(capped, _ids(tiny_lm.tokenizer, SHORT)) is None
    texts = [SHORT, MEDIUM, LONG_UNDER_WINDOW]
    report = compute_perplexity(capped, tiny_lm.tokenizer, texts)
    plain = compute_perplexity(tiny_lm.model, tiny_lm.tokenizer, texts)
    for text, res, uncapped in zip(texts, report.results, plain.results, strict=True):
        nll, n = _plain_nll(capped, _ids(tiny_lm.tokenizer, text))
        assert res.n_tokens == n
        assert res.nll_sum == pytest.approx(nll, rel=1e-5)
        assert abs(res.nll_sum - uncapped.nll_sum) > 0.01 * uncapped.nll_sum  # capping matters
