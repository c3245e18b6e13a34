"""Batched perplexity of texts under a causal LM, with the sliding-window (stride) recipe.

Recipe: "Perplexity of fixed-length models" from the Hugging Face transformers guide
(https://huggingface.co/docs/transformers/perplexity). A text longer than the model's context
window is cut into windows of ``window`` tokens that start every ``stride`` tokens; each window
scores only the tokens that no earlier window scored, so every token is scored exactly once and
with as much left context as the window allows (at least ``window - stride`` tokens once the
first window is full). ``stride`` must be below ``window``: with disjoint chunks
(``stride == window``) the first token of every later chunk would have no context and the
guide's loop silently leaves it unscored; ``stride = window - 1`` is the fastest setting that
still scores every token.

Definitions (all logs are natural logs, NLL in nats):

* per text: ``nll_sum`` = sum over scored tokens of ``-log p(token | left context)``,
  ``n_tokens`` = number of scored tokens, ``perplexity = exp(nll_sum / n_tokens)``.
* ``mean_per_text_perplexity`` = arithmetic mean of the per-text perplexities (what
  ``evaluate``'s ``perplexity`` metric reports as ``mean_perplexity``); every text weighs the
  same, so short texts weigh as much as long ones.
* ``corpus_perplexity_token_weighted`` = ``exp(sum nll_sum / sum n_tokens)``: every token weighs
  the same (the usual language-modelling definition).

BOS: when the tokenizer defines a BOS token, it is prepended explicitly (texts are encoded with
``add_special_tokens=False``, so it is never doubled) and the first real token is scored given
BOS. BOS itself is never a target, so ``n_tokens`` equals the number of text tokens. Without
BOS (or with ``add_bos=False``) the first token has no context and is not scored, so
``n_tokens`` is one less than the number of text tokens.

Empty texts (``""``), and texts that leave no token to score (a single token without BOS), are
*excluded with a reason*: they appear in ``results`` at their input position with
``n_tokens == 0``, ``perplexity = nan`` and ``excluded`` set, and they do not enter either
aggregate. If nothing is scored, both aggregates are ``nan``.

Efficiency: windows from all texts are sorted by length and packed into batches under a token
budget (``max_tokens_per_batch`` counts padded positions), right-padded, with padding masked out
of attention and of the loss; a batch whose rows all have the same length is passed without a
mask, so the model keeps its causal fast path. When the model's logits are exactly its LM head
applied to its decoder's last hidden state (checked once per model, see :func:`_split_head`),
the head runs only on the scored positions, so padding and each window's last position cost no
vocabulary projection. Log-softmax runs in float32 on the scored positions only, in chunks of
rows that bound the float32 copy (and keep it in cache on a CPU), even for bf16/fp16 weights;
per-text sums are accumulated in float64. torch is imported lazily.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

EXCLUDED_EMPTY = "empty text"
EXCLUDED_TOO_SHORT = "no token to score (a single token and no BOS to condition on)"


@dataclass(frozen=True)
class TextPerplexity:
    """Perplexity of one input text.

    Attributes:
        index: position of the text in the input list.
        nll_sum: summed negative log-likelihood of the scored tokens, in nats.
        n_tokens: number of scored tokens (0 when excluded).
        perplexity: ``exp(nll_sum / n_tokens)``; ``nan`` when excluded.
        excluded: None, or why the text was not scored.
    """

    index: int
    nll_sum: float
    n_tokens: int
    perplexity: float
    excluded: str | None = None


@dataclass(frozen=True)
class PerplexityReport:
    """Per-text results (input order) and both aggregates. See the module docstring."""

    results: list[TextPerplexity]
    mean_per_text_perplexity: float
    corpus_perplexity_token_weighted: float
    total_nll: float
    total_tokens: int
    n_excluded: int
    window: int
    stride: int
    add_bos: bool


@dataclass(frozen=True)
class _Segment:
    text_index: int
    ids: list[int]
    n_scored: int  # the last n_scored tokens of ids are targets


def model_context_length(model: Any, tokenizer: Any = None) -> int:
    """Return the model's maximum sequence length in tokens (the sliding window size).

    Reads ``max_position_embeddings`` / ``n_positions`` / ``n_ctx`` from the model config and
    falls back to a sane ``tokenizer.model_max_length``.

    Raises:
        ValueError: no length can be found.
    """
    config = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 1_000_000:
        return value
    raise ValueError("cannot determine the model's context length; pass window= explicitly")


def _segments(ids: list[int], text_index: int, window: int, stride: int) -> list[_Segment]:
    """Cut one token sequence into stride windows (HF guide loop); every target scored once."""
    out: list[_Segment] = []
    prev_end = 0
    for begin in range(0, len(ids), stride):
        end = min(begin + window, len(ids))
        chunk = ids[begin:end]
        # The first window cannot score its first token (no context); later windows score only
        # the tokens past the previous window's end, all of which have context inside the chunk.
        n_scored = min(end - prev_end, len(chunk) - 1)
        if n_scored > 0:
            out.append(_Segment(text_index, chunk, n_scored))
        prev_end = end
        if end == len(ids):
            break
    return out


def _batches(segments: list[_Segment], max_tokens: int) -> list[list[_Segment]]:
    """Pack segments, longest first, so that rows * longest_row <= max_tokens per batch."""
    ordered = sorted(segments, key=lambda s: len(s.ids), reverse=True)
    batches: list[list[_Segment]] = []
    current: list[_Segment] = []
    for seg in ordered:
        # Sorted descending, so the first row of a batch sets its padded length.
        if current and (len(current) + 1) * len(current[0].ids) > max_tokens:
            batches.append(current)
            current = []
        current.append(seg)
    if current:
        batches.append(current)
    return batches


# Rows of fp32 logits scored at once: elements per chunk / vocabulary size. On a CPU a chunk of
# 2**21 elements (8 MiB) stays in cache; on a GPU the cap only bounds the fp32 copy's memory.
_CHUNK_ELEMENTS_CPU = 2**21
_CHUNK_ELEMENTS_GPU = 2**27
# Splitting the model into "decoder, then LM head" is checked once per model object.
_SPLIT_CHECKED: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _split_head(model: Any, probe_ids: list[int]) -> tuple[Any, Any, int] | None:
    """``(decoder, head, vocabulary size)`` if the model's logits are ``head(decoder(x))``.

    That is, ``model(x).logits`` equals ``head(model.base_model(x).last_hidden_state)`` up to
    a few ulps of the model's dtype on ``probe_ids``. Running the decoder and applying the
    head only at scored positions then skips the vocabulary projection at padding and at each
    window's last position, and never materialises the padded (tokens x vocabulary) logits.
    Models that do more after the head (logit soft-capping, logit scaling) fail the check and
    keep the plain path, as does anything without ``base_model`` or
    ``get_output_embeddings()``. The answer is cached per model object.
    """
    import torch

    cached = _SPLIT_CHECKED.get(model, False)
    if cached is not False:
        return cached
    split = None
    decoder = getattr(model, "base_model", None)
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if decoder is not None and decoder is not model and head is not None and len(probe_ids) > 0:
        device = next(model.parameters()).device
        x = torch.tensor([probe_ids], dtype=torch.long, device=device)
        try:
            with torch.inference_mode():
                raw = model(input_ids=x, use_cache=False).logits
                hidden = decoder(input_ids=x, use_cache=False)
                hidden = getattr(hidden, "last_hidden_state", None)
                mine = head(hidden).float() if hidden is not None else None
            eps = torch.finfo(raw.dtype).eps
            full = raw.float()
        except (TypeError, ValueError, AttributeError, RuntimeError):
            mine = None
        if mine is not None and mine.shape == full.shape:
            # Same ops on the same input: equal up to kernel-choice rounding in the model dtype.
            scale = float(full.abs().max()) or 1.0
            if float((mine - full).abs().max()) <= 8 * eps * scale:
                split = (decoder, head, int(full.shape[-1]))
    _SPLIT_CHECKED[model] = split
    return split


def _batch_nll(
    model: Any, split: tuple[Any, Any, int] | None, batch: list[_Segment], pad_id: int, device: Any
) -> list[float]:
    """Summed NLL (nats) of each segment's scored tokens; one forward pass for the batch."""
    import torch
    import torch.nn.functional as F

    width = len(batch[0].ids)
    rows = len(batch)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    # ``scored[r, j]``: the logits at position j of row r predict a scored target (token j + 1).
    scored = torch.zeros((rows, width), dtype=torch.bool)
    for r, seg in enumerate(batch):
        n = len(seg.ids)
        input_ids[r, :n] = torch.tensor(seg.ids, dtype=torch.long)
        scored[r, n - seg.n_scored - 1 : n - 1] = True
    # Rows of equal length need no padding mask: the model then takes its causal fast path
    # (SDPA ``is_causal``), which skips the masked half of attention.
    attention = None
    if any(len(seg.ids) != width for seg in batch):
        attention = torch.zeros((rows, width), dtype=torch.long)
        for r, seg in enumerate(batch):
            attention[r, : len(seg.ids)] = 1
        attention = attention.to(device)
    input_ids = input_ids.to(device)
    scored = scored.to(device)
    targets = input_ids[:, 1:][scored[:, :-1]]
    row_of = scored.nonzero(as_tuple=True)[0]
    if split is not None:
        decoder, head, vocab = split
        hidden = decoder(input_ids=input_ids, attention_mask=attention, use_cache=False)
        selected = hidden.last_hidden_state[scored]  # (scored tokens, hidden size), row-major

        def logits_of(lo: int, hi: int) -> Any:
            return head(selected[lo:hi])

    else:
        logits = model(input_ids=input_ids, attention_mask=attention, use_cache=False).logits
        positions = scored.nonzero(as_tuple=True)
        vocab = logits.shape[-1]

        def logits_of(lo: int, hi: int) -> Any:
            return logits[positions[0][lo:hi], positions[1][lo:hi]]

    n_scored = int(targets.numel())
    per_chunk = _CHUNK_ELEMENTS_CPU if input_ids.device.type == "cpu" else _CHUNK_ELEMENTS_GPU
    step = max(1, per_chunk // max(1, vocab))
    token_nll = torch.empty(n_scored, dtype=torch.float32, device=input_ids.device)
    for lo in range(0, n_scored, step):
        hi = min(lo + step, n_scored)
        # float32 log-softmax of the scored positions only (bf16/fp16 logits are upcast per
        # chunk); cross_entropy(reduction="none") is exactly -log_softmax(logits)[target].
        token_nll[lo:hi] = F.cross_entropy(
            logits_of(lo, hi).float(), targets[lo:hi], reduction="none"
        )
    sums = torch.zeros(rows, dtype=torch.float64, device=input_ids.device)
    sums.index_add_(0, row_of, token_nll.double())
    return sums.tolist()


def compute_perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    window: int | None = None,
    stride: int | None = None,
    max_tokens_per_batch: int | None = None,
    add_bos: bool | None = None,
) -> PerplexityReport:
    """Score ``texts`` with ``model`` and return per-text and aggregate perplexities.

    Args:
        model: a transformers causal LM (already on its device, eval mode).
        tokenizer: its tokenizer.
        texts: the texts; results come back in this order.
        window: tokens per forward pass; default the model's context length.
        stride: start offset between consecutive windows of one long text; default
            ``window // 2``. Must satisfy ``1 <= stride < window``.
        max_tokens_per_batch: token budget per forward pass (rows x padded length); default
            8192 on GPUs and 1024 on CPU, where a smaller working set stays in cache (measured
            in ``bench/bench_perplexity.py``: 1024 beat 256, 512 and 2048 at 1 and 2 threads).
        add_bos: prepend BOS; None means "when the tokenizer has a BOS token".

    Returns:
        A :class:`PerplexityReport` (NLL in nats; see the module docstring for definitions).

    Raises:
        ValueError: bad window/stride/budget, ``add_bos=True`` without a BOS token, or a
            non-string text.
    """
    import torch

    window = window or model_context_length(model, tokenizer)
    stride = stride or max(1, window // 2)
    if window < 2:
        raise ValueError(f"window must be >= 2 tokens, got {window}")
    if not 1 <= stride < window:
        raise ValueError(f"stride must be in [1, window - 1 = {window - 1}], got {stride}")
    device = next(model.parameters()).device
    if max_tokens_per_batch is None:
        max_tokens_per_batch = 1024 if device.type == "cpu" else 8192
    if max_tokens_per_batch < 1:
        raise ValueError("max_tokens_per_batch must be positive")
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if add_bos is None:
        add_bos = bos_id is not None
    elif add_bos and bos_id is None:
        raise ValueError("add_bos=True but the tokenizer has no BOS token")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] is {type(text).__name__}, expected str")

    excluded: dict[int, str] = {}
    segments: list[_Segment] = []
    non_empty = [i for i, t in enumerate(texts) if t]
    for i, t in enumerate(texts):
        if not t:
            excluded[i] = EXCLUDED_EMPTY
    if non_empty:
        # One batched call uses the fast tokenizer's parallelism; add_special_tokens=False so
        # BOS/EOS are under our control (see module docstring). verbose=False silences the
        # "longer than model_max_length" warning: long texts are what the stride loop is for.
        encoded = tokenizer([texts[i] for i in non_empty], add_special_tokens=False, verbose=False)[
            "input_ids"
        ]
        for i, ids in zip(non_empty, encoded, strict=True):
            ids = [bos_id, *ids] if add_bos else list(ids)
            segs = _segments(ids, i, window, stride)
            if not segs:
                excluded[i] = EXCLUDED_TOO_SHORT
            segments.extend(segs)

    nll = [0.0] * len(texts)
    counts = [0] * len(texts)
    pad_id = _pad_id(tokenizer)
    with torch.inference_mode():
        split = _split_head(model, segments[0].ids[:16]) if segments else None
        for batch in _batches(segments, max_tokens_per_batch):
            sums = _batch_nll(model, split, batch, pad_id, device)
            for seg, value in zip(batch, sums, strict=True):
                nll[seg.text_index] += value
                counts[seg.text_index] += seg.n_scored

    results: list[TextPerplexity] = []
    for i in range(len(texts)):
        if i in excluded:
            results.append(TextPerplexity(i, 0.0, 0, math.nan, excluded[i]))
        else:
            results.append(TextPerplexity(i, nll[i], counts[i], math.exp(nll[i] / counts[i])))
    scored = [r for r in results if r.excluded is None]
    total_nll = math.fsum(r.nll_sum for r in scored)
    total_tokens = sum(r.n_tokens for r in scored)
    return PerplexityReport(
        results=results,
        mean_per_text_perplexity=(
            math.fsum(r.perplexity for r in scored) / len(scored) if scored else math.nan
        ),
        corpus_perplexity_token_weighted=(
            math.exp(total_nll / total_tokens) if total_tokens else math.nan
        ),
        total_nll=total_nll,
        total_tokens=total_tokens,
        n_excluded=len(excluded),
        window=window,
        stride=stride,
        add_bos=add_bos,
    )


def perplexity(
    texts: Sequence[str],
    name_or_path: str | os.PathLike[str],
    *,
    device: str | None = None,
    dtype: Any = None,
    **kwargs: Any,
) -> PerplexityReport:
    """Load ``name_or_path`` (cached per process) and run :func:`compute_perplexity`.

    Keyword arguments other than ``device``/``dtype`` go to :func:`compute_perplexity`.

    Raises:
        ModelUnavailableError: the model cannot be loaded (callers skip with the reason).
        ValueError: see :func:`compute_perplexity`.
    """
    from scoring.lm.loading import load_causal_lm

    loaded = load_causal_lm(name_or_path, device=device, dtype=dtype)
    return compute_perplexity(loaded.model, loaded.tokenizer, texts, **kwargs)


def _pad_id(tokenizer: Any) -> int:
    """Any valid id works for padding (it is masked everywhere); prefer the real pad token."""
    for attr in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0
