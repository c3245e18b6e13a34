"""Reference-based generation metrics: exact match, BLEU and ROUGE.

* Exact match follows the official SQuAD v1.1 evaluation script (Rajpurkar et al., 2016):
  lowercase, drop ASCII punctuation (``string.punctuation``), drop the articles a/an/the, collapse
  whitespace, then compare strings.
* BLEU (Papineni et al., 2002) is computed by sacrebleu (Post, 2018). Sentence BLEU uses
  ``BLEU(effective_order=True)`` (exp smoothing), as sacrebleu recommends for single sentences.
  Corpus BLEU pools n-gram statistics over all items (it is *not* the mean of sentence BLEUs).
  Every score carries sacrebleu's signature string so it can be reproduced.
* ROUGE-1/2/L (Lin, 2004) F-measures are computed by Google's ``rouge-score`` with the Porter
  stemmer. Its default tokenizer keeps only ``[a-z0-9]`` and silently turns e.g. Cyrillic or
  Chinese text into zero tokens (score 0), so :class:`UnicodeTokenizer` is offered and chosen
  automatically when the *reference* is mostly non-Latin script (deciding on the reference keeps
  both systems of an A/B pair on the same tokenizer for the same item). The "default" mode runs
  rouge-score's own tokenize function with a memoised Porter stemmer: identical tokens, faster.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import regex
from nltk.stem import porter
from rouge_score import rouge_scorer, tokenizers
from rouge_score import tokenize as rouge_tokenize
from sacrebleu.metrics import BLEU

from scoring.metrics.registry import CorpusValue, MetricValue, register

__all__ = [
    "ROUGE_TYPES",
    "BleuResult",
    "RougeResult",
    "UnicodeTokenizer",
    "corpus_bleu",
    "exact_match",
    "mostly_non_latin",
    "normalize_answer",
    "rouge",
    "sentence_bleu",
]

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")
RougeTokenizerMode = Literal["auto", "default", "unicode"]

# --------------------------------------------------------------------------- exact match

_PUNCT_TABLE = str.maketrans("", "", string.punctuation)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 answer normalisation: lower, strip punctuation and articles, fix whitespace.

    Same order of steps as the official script (punctuation before articles); only ASCII
    punctuation is removed, as there.
    """
    text = text.lower().translate(_PUNCT_TABLE)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 if the SQuAD-normalised strings are equal, else 0.0."""
    return 1.0 if normalize_answer(prediction) == normalize_answer(reference) else 0.0


# --------------------------------------------------------------------------- BLEU


@dataclass(frozen=True, slots=True)
class BleuResult:
    """A BLEU score (0-100) with sacrebleu's signature and sufficient statistics."""

    score: float
    signature: str
    precisions: tuple[float, ...]
    bp: float
    sys_len: int
    ref_len: int


@lru_cache(maxsize=16)
def _bleu(tokenize: str, effective_order: bool) -> BLEU:
    # Building a BLEU object resolves the tokenizer; do it once per configuration.
    try:
        return BLEU(tokenize=tokenize, effective_order=effective_order)
    except (KeyError, ValueError, ImportError, RuntimeError) as exc:
        # KeyError: unknown name; ImportError/RuntimeError: tokenizer extras not installed.
        raise ValueError(f"unsupported sacrebleu tokenizer {tokenize!r}: {exc}") from exc


def _result(bleu: BLEU, score: Any) -> BleuResult:
    # The signature depends on the last call (nrefs), so read it right after scoring.
    return BleuResult(
        score=float(score.score),
        signature=str(bleu.get_signature()),
        precisions=tuple(float(p) for p in score.precisions),
        bp=float(score.bp),
        sys_len=int(score.sys_len),
        ref_len=int(score.ref_len),
    )


def _as_refs(reference: str | Sequence[str], where: str) -> list[str]:
    refs = [reference] if isinstance(reference, str) else list(reference)
    if not refs or not all(isinstance(r, str) for r in refs):
        raise ValueError(f"{where}: need one or more reference strings")
    return refs


def sentence_bleu(
    hypothesis: str, reference: str | Sequence[str], *, tokenize: str = "13a"
) -> BleuResult:
    """Sentence BLEU (0-100) with effective order and exp smoothing, via sacrebleu.

    ``reference`` is one string or several alternatives. Raises ``ValueError`` for no reference
    or an unknown sacrebleu tokenizer name.
    """
    refs = _as_refs(reference, "sentence_bleu")
    bleu = _bleu(tokenize, True)
    return _result(bleu, bleu.sentence_score(hypothesis, refs))


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    tokenize: str = "13a",
) -> BleuResult:
    """Corpus BLEU (0-100) over aligned hypotheses/references, via sacrebleu.

    N-gram counts and lengths are pooled over all items before the geometric mean and brevity
    penalty (standard BLEU); this differs from averaging sentence BLEUs. ``references[i]`` is a
    string or a list of alternatives; every item must have the same number of alternatives.
    Raises ``ValueError`` on empty input, length mismatch or ragged reference lists.
    """
    if len(hypotheses) == 0:
        raise ValueError("corpus_bleu: no hypotheses")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"corpus_bleu: {len(hypotheses)} hypotheses but {len(references)} references"
        )
    per_item = [_as_refs(r, f"corpus_bleu item {i}") for i, r in enumerate(references)]
    n_refs = len(per_item[0])
    if any(len(r) != n_refs for r in per_item):
        raise ValueError("corpus_bleu: every item needs the same number of references")
    # sacrebleu wants reference *streams*: stream k holds the k-th alternative of every item.
    streams = [[refs[k] for refs in per_item] for k in range(n_refs)]
    bleu = _bleu(tokenize, False)
    return _result(bleu, bleu.corpus_score(list(hypotheses), streams))


# --------------------------------------------------------------------------- ROUGE

# Scripts written without spaces between words: score them per character (Han, kana) or per
# character plus its combining marks (Thai, Lao, Khmer, Myanmar), since word segmentation would
# need a dictionary-based segmenter.
_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_UNICODE_TOKEN_RE = regex.compile(
    rf"[{_UNSPACED}]\p{{M}}*"
    # A word: a letter/digit outside those scripts, then letters, digits and combining marks
    # (marks matter for Devanagari, Arabic diacritics, etc.). Underscore is excluded, as in
    # rouge-score's default tokenizer.
    rf"|[[\p{{L}}\p{{N}}]--[{_UNSPACED}]][[\p{{L}}\p{{N}}\p{{M}}]--[{_UNSPACED}]]*",
    regex.V1,
)
_LETTER_RE = regex.compile(r"\p{L}")
_LATIN_LETTER_RE = regex.compile(r"\p{Latin}")


def mostly_non_latin(text: str, *, threshold: float = 0.5) -> bool:
    """True if more than ``threshold`` of the letters in ``text`` are not Latin script.

    Digits, punctuation and spaces are ignored; text without letters is not "mostly non-Latin".
    """
    if text.isascii():  # fast path for the common case
        return False
    letters = len(_LETTER_RE.findall(text))
    if letters == 0:
        return False
    non_latin = letters - len(_LATIN_LETTER_RE.findall(text))
    return non_latin / letters > threshold


_PORTER = porter.PorterStemmer()


@lru_cache(maxsize=65536)
def _stem(token: str) -> str:
    return _PORTER.stem(token)


class UnicodeTokenizer(tokenizers.Tokenizer):
    """Tokenizer for ``rouge_scorer.RougeScorer`` that keeps non-Latin text.

    Case-folds, then splits into Unicode words (letters/digits with combining marks) and single
    characters of unspaced scripts (CJK, Thai, ...). With ``use_stemmer`` the Porter stemmer is
    applied to ASCII tokens longer than 3 characters, exactly like rouge-score's default
    tokenizer, so on ASCII text both give identical tokens.
    """

    def __init__(self, use_stemmer: bool = True) -> None:
        self.use_stemmer = use_stemmer

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text`` (a list of str)."""
        tokens = _UNICODE_TOKEN_RE.findall(text.casefold())
        if self.use_stemmer:
            tokens = [_stem(t) if len(t) > 3 and t.isascii() else t for t in tokens]
        return tokens


class _MemoPorter:
    """Porter stemmer with a memo; stemming is a pure function of the word."""

    def stem(self, word: str) -> str:
        return _stem(word)


class _DefaultTokenizerMemo(tokenizers.Tokenizer):
    """rouge-score's default tokenizer (its own ``tokenize`` function) with memoised stemming.

    Stemming dominates ROUGE's cost and words repeat across a study, so memoising it is the
    cheapest speed-up that provably keeps the tokens identical to ``DefaultTokenizer(True)``.
    """

    _porter = _MemoPorter()

    def tokenize(self, text: str) -> list[str]:
        return rouge_tokenize.tokenize(text, self._porter)


@dataclass(frozen=True, slots=True)
class RougeResult:
    """ROUGE F-measures in [0, 1] and which tokenizer produced them."""

    rouge1: float
    rouge2: float
    rougeL: float  # spelled like rouge-score's key
    tokenizer: Literal["default", "unicode"]
    warnings: tuple[str, ...] = ()


_WARN_AUTO_UNICODE = (
    "reference is mostly non-Latin script; used the Unicode tokenizer for ROUGE "
    "(rouge-score's default tokenizer drops non-Latin characters)"
)
_WARN_DEFAULT_NON_LATIN = (
    "reference is mostly non-Latin script but the default ROUGE tokenizer was forced; it drops "
    "non-Latin characters, so the score is close to meaningless"
)


@lru_cache(maxsize=2)
def _scorer(mode: Literal["default", "unicode"]) -> rouge_scorer.RougeScorer:
    tokenizer = UnicodeTokenizer(use_stemmer=True) if mode == "unicode" else _DefaultTokenizerMemo()
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True, tokenizer=tokenizer)


@lru_cache(maxsize=256)
def _rouge_cached(prediction: str, reference: str, mode: RougeTokenizerMode) -> RougeResult:
    # Small cache: the registry computes rouge1, rouge2 and rougeL for the same pair in a row.
    warnings: tuple[str, ...] = ()
    if mode == "auto":
        chosen: Literal["default", "unicode"] = "default"
        if mostly_non_latin(reference):
            chosen, warnings = "unicode", (_WARN_AUTO_UNICODE,)
    else:
        chosen = mode
        if mode == "default" and mostly_non_latin(reference):
            warnings = (_WARN_DEFAULT_NON_LATIN,)
    # rouge-score's argument order is (target, prediction).
    scores = _scorer(chosen).score(reference, prediction)
    return RougeResult(
        rouge1=float(scores["rouge1"].fmeasure),
        rouge2=float(scores["rouge2"].fmeasure),
        rougeL=float(scores["rougeL"].fmeasure),
        tokenizer=chosen,
        warnings=warnings,
    )


def rouge(
    prediction: str, reference: str, *, tokenizer: RougeTokenizerMode = "auto"
) -> RougeResult:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures (0-1) with Porter stemming.

    ``tokenizer``: ``"default"`` (rouge-score's, comparable with published numbers),
    ``"unicode"`` (:class:`UnicodeTokenizer`) or ``"auto"`` (Unicode when the reference is
    mostly non-Latin, with a warning in the result). Raises ``ValueError`` for an unknown mode.
    """
    if tokenizer not in ("auto", "default", "unicode"):
        raise ValueError(
            f"rouge tokenizer must be 'auto', 'default' or 'unicode', not {tokenizer!r}"
        )
    if not isinstance(prediction, str) or not isinstance(reference, str):
        raise TypeError("rouge: prediction and reference must be str")
    return _rouge_cached(prediction, reference, tokenizer)


# --------------------------------------------------------------------------- registry adapters

_TEXT_TASKS = ("generation", "chat")


def _rouge_item(reference: str, output: str, settings: Mapping[str, Any], key: str) -> MetricValue:
    result = rouge(output, reference, tokenizer=settings.get("rouge_tokenizer", "auto"))
    return MetricValue(getattr(result, key), f"tokenizer:{result.tokenizer}", result.warnings)


@register(
    "exact_match",
    version="1",
    task_types=("generation",),
    kind="task",
    level="item",
    needs=("reference",),
)
def _exact_match_item(
    output: str,
    *,
    reference: str | None,
    label: str | None,
    metadata: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> float:
    """Exact match after SQuAD normalisation (1/0)."""
    assert reference is not None  # guaranteed by needs=("reference",)
    return exact_match(output, reference)


@register(
    "sentence_bleu",
    version="1",
    task_types=_TEXT_TASKS,
    kind="task",
    level="item",
    needs=("reference",),
)
def _sentence_bleu_item(
    output: str,
    *,
    reference: str | None,
    label: str | None,
    metadata: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> MetricValue:
    """Sentence BLEU (0-100, effective order); detail is sacrebleu's signature."""
    assert reference is not None
    result = sentence_bleu(output, reference, tokenize=settings.get("bleu_tokenize", "13a"))
    return MetricValue(result.score, result.signature)


@register(
    "corpus_bleu",
    version="1",
    task_types=_TEXT_TASKS,
    kind="task",
    level="corpus",
    needs=("reference",),
)
def _corpus_bleu_corpus(
    outputs: Sequence[str],
    *,
    references: Sequence[str | None],
    labels: Sequence[str | None],
    metadatas: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
) -> CorpusValue:
    """Corpus BLEU (0-100) over the items that have a reference."""
    pairs = [(o, r) for o, r in zip(outputs, references, strict=True) if r is not None]
    result = corpus_bleu(
        [o for o, _ in pairs],
        [r for _, r in pairs],
        tokenize=settings.get("bleu_tokenize", "13a"),
    )
    values = {
        "bleu": result.score,
        "bp": result.bp,
        "sys_len": float(result.sys_len),
        "ref_len": float(result.ref_len),
        "n_items": float(len(pairs)),
    }
    values.update({f"precision_{k + 1}": p for k, p in enumerate(result.precisions)})
    warnings = ()
    if len(pairs) < len(outputs):
        warnings = (f"{len(outputs) - len(pairs)} items without reference left out of corpus BLEU",)
    return CorpusValue(values, {"signature": result.signature}, warnings)


def _make_rouge_metric(rouge_type: str) -> None:
    def fn(
        output: str,
        *,
        reference: str | None,
        label: str | None,
        metadata: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> MetricValue:
        assert reference is not None
        return _rouge_item(reference, output, settings, rouge_type)

    fn.__doc__ = f"{rouge_type} F-measure (0-1), Porter stemming; detail names the tokenizer."
    fn.__name__ = fn.__qualname__ = f"_{rouge_type}_item"
    register(
        rouge_type,
        version="1",
        task_types=_TEXT_TASKS,
        kind="task",
        level="item",
        needs=("reference",),
    )(fn)


for _rouge_type in ROUGE_TYPES:
    _make_rouge_metric(_rouge_type)
