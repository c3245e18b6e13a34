"""Blinding audit: how well do surface features alone tell base outputs from tuned ones?

If a classifier that never reads the content (only whitespace at the ends, the first word,
markdown habits, line endings, the script, the length) can say which model wrote an output,
so can a rater, and the study is not blind. Each output is one row (label: tuned = 1) with
binary surface features plus, separately, length features; a logistic regression
(standardised features) is scored by the ROC AUC of its out-of-fold probabilities under
group k-fold cross-validation (Hastie, Tibshirani & Friedman, *The Elements of
Statistical Learning*, 2nd ed., 2009, section 7.10: the model never scores an output it was
fitted on; the two outputs of an item stay in the same fold). AUC 0.5 is chance, 1.0 a
perfect tell. The split is seeded, so the same outputs always give the same numbers.

The audit runs twice: on the raw outputs (what the files contain) and on what raters are
shown after the study's display normalisation (``annotations.blinding.display_text``). The
second is the one that matters for blinding; the first says which normalisations matter.
Length is reported apart (``auc`` with it, ``auc_without_length`` without): a fine-tune that
writes longer answers is a property of the model that raters are meant to judge, a leading
space is not.

Pure computation (numpy, scikit-learn, no Django).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from os.path import commonprefix
from typing import Any

import numpy as np

from annotations.blinding import MAX_STRIP_PREFIX_LENGTH, display_text

# Above this AUC (without length, on what raters see) opening a study needs an acknowledgement.
RISK_AUC = 0.75
# Fewer items than this give an AUC that is mostly noise: the audit reports rates only.
MIN_ITEMS_FOR_AUC = 10
FOLDS = 5
SEED = 20_241_127
# A feature is reported as a tell when its rates on the two sides differ by at least this.
MIN_TELL_GAP = 0.10
MAX_TELLS = 10
# A first word is a fixed opener (a prefix strip removes it) when at least this share of one
# side starts with it; a rarer one is content, and only shows how the openers shift.
FIXED_OPENER_MIN_RATE = 0.5
# First words become features when this common among all outputs (chosen without labels, so
# choosing them leaks nothing from the held-out folds).
FIRST_WORD_MIN_SHARE = 0.02
FIRST_WORD_MIN_COUNT = 3
MAX_FIRST_WORDS = 30
MAX_FIRST_WORD_LENGTH = 40
# Script detection reads this many characters of each output.
SCRIPT_SAMPLE_CHARS = 2_000

WHITESPACE_FIX = "whitespace"
PREFIX_FIX = "strip_prefix"

_HEADING = re.compile(r"(?m)^[ \t]{0,3}#{1,6}[ \t]+\S")
_BULLET = re.compile(r"(?m)^[ \t]*[-*+•][ \t]+\S")
_NUMBERED = re.compile(r"(?m)^[ \t]*\d{1,3}[.)][ \t]+\S")
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_CODE_FENCE = re.compile(r"(?m)^[ \t]*(```|~~~)")
_TABLE_ROW = re.compile(r"(?m)^[ \t]*\|.*\|[ \t]*$")
_TABLE_RULE = re.compile(r"(?m)^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*\|")


def _script_of(char: str) -> str | None:
    point = ord(char)
    if not char.isalpha():
        return None
    if point <= 0x024F or 0x1E00 <= point <= 0x1EFF:
        return "latin"
    if 0x0370 <= point <= 0x03FF:
        return "greek"
    if 0x0400 <= point <= 0x052F:
        return "cyrillic"
    if 0x0590 <= point <= 0x05FF:
        return "hebrew"
    if 0x0600 <= point <= 0x06FF or 0x0750 <= point <= 0x077F:
        return "arabic"
    if 0x0900 <= point <= 0x0DFF:
        return "indic"
    if (
        0x3040 <= point <= 0x30FF
        or 0x3400 <= point <= 0x4DBF
        or 0x4E00 <= point <= 0x9FFF
        or 0xAC00 <= point <= 0xD7AF
        or 0xF900 <= point <= 0xFAFF
    ):
        return "cjk"
    return "other"


SCRIPTS = ("latin", "cjk", "cyrillic", "arabic", "greek", "hebrew", "indic", "other", "none")


def dominant_script(text: str) -> str:
    """The script most of the text's letters are written in ("none" without letters)."""
    counts = Counter(
        script for script in map(_script_of, text[:SCRIPT_SAMPLE_CHARS]) if script is not None
    )
    return counts.most_common(1)[0][0] if counts else "none"


def first_word(text: str) -> str:
    """The first whitespace-separated token, after leading whitespace ("" for a blank text)."""
    parts = text.split(maxsplit=1)
    return parts[0][:MAX_FIRST_WORD_LENGTH] if parts else ""


# Binary surface features: name -> (test, the display normalisation that removes the tell).
SURFACE_FEATURES: dict[str, tuple[Callable[[str], bool], str | None]] = {
    "leading_whitespace": (lambda t: t[:1].isspace(), WHITESPACE_FIX),
    "trailing_whitespace": (lambda t: t[-1:].isspace(), WHITESPACE_FIX),
    "trailing_newline": (lambda t: t.endswith("\n"), WHITESPACE_FIX),
    "crlf_line_endings": (lambda t: "\r" in t, WHITESPACE_FIX),
    "not_unicode_nfc": (lambda t: not unicodedata.is_normalized("NFC", t), WHITESPACE_FIX),
    "markdown_heading": (lambda t: bool(_HEADING.search(t)), None),
    "markdown_bullets": (lambda t: bool(_BULLET.search(t)), None),
    "markdown_numbered_list": (lambda t: bool(_NUMBERED.search(t)), None),
    "markdown_bold": (lambda t: bool(_BOLD.search(t)), None),
    "markdown_code_fence": (lambda t: bool(_CODE_FENCE.search(t)), None),
    "markdown_table": (lambda t: bool(_TABLE_ROW.search(t) and _TABLE_RULE.search(t)), None),
}
LENGTH_FEATURES = ("log_characters", "log_words", "log_lines")


def length_features(text: str) -> list[float]:
    return [
        math.log1p(len(text)),
        math.log1p(len(text.split())),
        math.log1p(text.count("\n") + 1 if text else 0),
    ]


@dataclass(frozen=True)
class Tell:
    """A surface feature whose rate differs between the sides; `fix` is the display
    normalisation that removes it ("whitespace": always applied; "strip_prefix": the study's
    prefix list, with `prefix` the one to add), or None when only the content can change it."""

    feature: str
    base_rate: float
    tuned_rate: float
    fix: str | None = None
    prefix: str | None = None

    @property
    def gap(self) -> float:
        return abs(self.tuned_rate - self.base_rate)


@dataclass(frozen=True)
class SideAudit:
    """The audit of one set of texts (raw or as displayed)."""

    auc: float | None
    auc_without_length: float | None
    tells: tuple[Tell, ...]
    base_median_characters: float
    tuned_median_characters: float
    median_length_ratio: float | None


@dataclass(frozen=True)
class Normalisation:
    """A display normalisation that removes tells: `kind` "whitespace" (always on) or
    "strip_prefix" (`prefix`), whether the study applies it, and the tells it removes."""

    kind: str
    enabled: bool
    removes: tuple[str, ...]
    prefix: str | None = None


@dataclass(frozen=True)
class BlindingAudit:
    n_items: int
    n_outputs: int
    raw: SideAudit
    displayed: SideAudit
    normalisations: tuple[Normalisation, ...]
    strip_prefixes: tuple[str, ...]
    folds: int
    seed: int
    risk_threshold: float = RISK_AUC
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def at_risk(self) -> bool:
        """Whether what raters see tells the sides apart beyond the threshold, length aside."""
        auc = self.displayed.auc_without_length
        return auc is not None and auc > self.risk_threshold

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape stored on the study and served by the API: `auc`,
        `auc_without_length` and `tells` describe the raw outputs; the `*_displayed` keys what
        raters are shown."""

        def tells(side: SideAudit) -> list[dict[str, Any]]:
            return [
                {k: v for k, v in asdict(tell).items() if v is not None or k == "fix"}
                for tell in side.tells
            ]

        def length(side: SideAudit) -> dict[str, Any]:
            return {
                "base_median_characters": side.base_median_characters,
                "tuned_median_characters": side.tuned_median_characters,
                "median_length_ratio": side.median_length_ratio,
            }

        return {
            "auc": self.raw.auc,
            "auc_without_length": self.raw.auc_without_length,
            "tells": tells(self.raw),
            "length": length(self.raw),
            "auc_displayed": self.displayed.auc,
            "auc_displayed_without_length": self.displayed.auc_without_length,
            "tells_displayed": tells(self.displayed),
            "length_displayed": length(self.displayed),
            "normalisations": [
                {k: v for k, v in asdict(n).items() if k != "prefix" or v is not None}
                for n in self.normalisations
            ],
            "strip_prefixes": list(self.strip_prefixes),
            "at_risk": self.at_risk,
            "risk_threshold": self.risk_threshold,
            "n_items": self.n_items,
            "n_outputs": self.n_outputs,
            "folds": self.folds,
            "seed": self.seed,
            "notes": list(self.notes),
        }


def _rate(values: np.ndarray) -> float:
    return round(float(values.mean()), 4) if values.size else 0.0


def _common_first_words(texts: Sequence[str]) -> list[str]:
    counts = Counter(first_word(t) for t in texts)
    counts.pop("", None)
    needed = max(FIRST_WORD_MIN_COUNT, math.ceil(FIRST_WORD_MIN_SHARE * len(texts)))
    return [word for word, n in counts.most_common(MAX_FIRST_WORDS) if n >= needed]


def _fixed_prefix(texts: Sequence[str], word: str) -> str:
    """The longest opening, ending at a word boundary, shared by every text that starts with
    `word` ("Sure! Here is" when all of them say so), at most MAX_STRIP_PREFIX_LENGTH long."""
    opened = [t.strip() for t in texts if first_word(t) == word]
    if len(opened) < 2:
        return word
    shared = commonprefix(opened)[:MAX_STRIP_PREFIX_LENGTH]
    end = len(shared)
    while end > len(word) and not all(len(t) == end or t[end].isspace() for t in opened):
        end -= 1
    shared = shared[:end].rstrip()
    return shared if shared.startswith(word) else word


def feature_matrix(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(binary surface features, length features, names of the binary columns) per text."""
    words = _common_first_words(texts)
    names = [
        *SURFACE_FEATURES,
        *(f"script:{s}" for s in SCRIPTS),
        *(f"first_word:{w}" for w in words),
    ]
    binary = np.zeros((len(texts), len(names)), dtype=float)
    lengths = np.zeros((len(texts), len(LENGTH_FEATURES)), dtype=float)
    script_column = {s: len(SURFACE_FEATURES) + i for i, s in enumerate(SCRIPTS)}
    word_column = {w: len(SURFACE_FEATURES) + len(SCRIPTS) + i for i, w in enumerate(words)}
    for row, text in enumerate(texts):
        for column, (test, _fix) in enumerate(SURFACE_FEATURES.values()):
            binary[row, column] = test(text)
        binary[row, script_column[dominant_script(text)]] = 1.0
        column = word_column.get(first_word(text))
        if column is not None:
            binary[row, column] = 1.0
        lengths[row] = length_features(text)
    return binary, lengths, names


def cross_validated_auc(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, folds: int, seed: int
) -> float:
    """ROC AUC of out-of-fold logistic-regression probabilities; the groups (items) are dealt
    to `folds` folds in a seeded random order, so both outputs of an item share a fold and
    every fold holds as many base as tuned outputs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    varying = features[:, features.std(axis=0) > 0]
    if varying.shape[1] == 0:
        return 0.5
    unique_groups = np.unique(groups)
    order = np.random.default_rng(seed).permutation(unique_groups.size)
    fold_of_group = np.empty(unique_groups.size, dtype=int)
    fold_of_group[order] = np.arange(unique_groups.size) % folds
    fold = fold_of_group[np.searchsorted(unique_groups, groups)]
    scores = np.zeros(labels.size, dtype=float)
    for k in range(folds):
        held_out = fold == k
        # liblinear: single-threaded and exact on a few thousand rows; lbfgs spends its time
        # in BLAS thread start-up here.
        model = make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear"))
        model.fit(varying[~held_out], labels[~held_out])
        scores[held_out] = model.predict_proba(varying[held_out])[:, 1]
    return round(float(roc_auc_score(labels, scores)), 4)


def audit_texts(
    base: Sequence[str],
    tuned: Sequence[str],
    *,
    folds: int = FOLDS,
    seed: int = SEED,
) -> SideAudit:
    """The audit of one set of paired texts (base[i] and tuned[i] answer the same prompt)."""
    if len(base) != len(tuned):
        raise ValueError("base and tuned must hold the same number of texts")
    n = len(base)
    texts = [*base, *tuned]
    labels = np.array([0] * n + [1] * n)
    groups = np.concatenate([np.arange(n), np.arange(n)])
    binary, lengths, names = feature_matrix(texts)
    auc = auc_without_length = None
    if n >= MIN_ITEMS_FOR_AUC:
        k = min(folds, n)
        auc = cross_validated_auc(np.hstack([binary, lengths]), labels, groups, folds=k, seed=seed)
        auc_without_length = cross_validated_auc(binary, labels, groups, folds=k, seed=seed)
    fixes = {name: fix for name, (_test, fix) in SURFACE_FEATURES.items()}
    tells = []
    for column, name in enumerate(names):
        base_rate, tuned_rate = _rate(binary[:n, column]), _rate(binary[n:, column])
        if abs(tuned_rate - base_rate) < MIN_TELL_GAP:
            continue
        if name.startswith("first_word:"):
            word = name.removeprefix("first_word:")
            if max(base_rate, tuned_rate) >= FIXED_OPENER_MIN_RATE:
                prefix = _fixed_prefix(tuned if tuned_rate > base_rate else base, word)
                tells.append(Tell(name, base_rate, tuned_rate, PREFIX_FIX, prefix))
            else:
                tells.append(Tell(name, base_rate, tuned_rate))
        else:
            tells.append(Tell(name, base_rate, tuned_rate, fixes.get(name)))
    tells.sort(key=lambda t: (-t.gap, t.feature))
    base_chars = np.array([len(t) for t in base], dtype=float)
    tuned_chars = np.array([len(t) for t in tuned], dtype=float)
    ratios = tuned_chars / np.maximum(base_chars, 1.0)
    return SideAudit(
        auc=auc,
        auc_without_length=auc_without_length,
        tells=tuple(tells[:MAX_TELLS]),
        base_median_characters=float(np.median(base_chars)) if n else 0.0,
        tuned_median_characters=float(np.median(tuned_chars)) if n else 0.0,
        median_length_ratio=round(float(np.median(ratios)), 4) if n else None,
    )


def blinding_audit(
    pairs: Sequence[tuple[str, str]],
    *,
    strip_prefixes: Sequence[str] = (),
    folds: int = FOLDS,
    seed: int = SEED,
) -> BlindingAudit:
    """Audits (base, tuned) output pairs raw and as displayed with `strip_prefixes`.

    Returns the AUCs with and without length features, the tells (features whose rates differ
    by at least MIN_TELL_GAP, largest gap first) and the normalisations that remove them.
    AUCs are None below MIN_ITEMS_FOR_AUC items.
    """
    base = [b for b, _t in pairs]
    tuned = [t for _b, t in pairs]
    raw = audit_texts(base, tuned, folds=folds, seed=seed)
    shown_base = [display_text(b, strip_prefixes=strip_prefixes) for b in base]
    shown_tuned = [display_text(t, strip_prefixes=strip_prefixes) for t in tuned]
    displayed = audit_texts(shown_base, shown_tuned, folds=folds, seed=seed)
    return BlindingAudit(
        n_items=len(pairs),
        n_outputs=2 * len(pairs),
        raw=raw,
        displayed=displayed,
        normalisations=normalisations_for(raw, strip_prefixes=strip_prefixes),
        strip_prefixes=tuple(strip_prefixes),
        folds=min(folds, len(pairs)),
        seed=seed,
        notes=(
            (f"fewer than {MIN_ITEMS_FOR_AUC} items: no AUC, rates only",)
            if len(pairs) < MIN_ITEMS_FOR_AUC
            else ()
        ),
    )


def normalisations_for(
    raw: SideAudit, *, strip_prefixes: Sequence[str]
) -> tuple[Normalisation, ...]:
    """The normalisations that remove the raw tells: whitespace (always applied) and one
    prefix strip per fixed opener, marked enabled when the study's list already has it."""
    found: list[Normalisation] = []
    whitespace = tuple(t.feature for t in raw.tells if t.fix == WHITESPACE_FIX)
    if whitespace:
        found.append(Normalisation(WHITESPACE_FIX, True, whitespace))
    enabled = {display_text(p) for p in strip_prefixes}
    for tell in raw.tells:
        if tell.fix == PREFIX_FIX and tell.prefix:
            prefix = display_text(tell.prefix)
            found.append(Normalisation(PREFIX_FIX, prefix in enabled, (tell.feature,), prefix))
    return tuple(found)
