"""Generation metrics: SQuAD exact match, sacrebleu BLEU, rouge-score ROUGE + Unicode tokenizer."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer, tokenizers
from sacrebleu.metrics import BLEU

from scoring.metrics import generation
from scoring.metrics.generation import (
    UnicodeTokenizer,
    corpus_bleu,
    exact_match,
    mostly_non_latin,
    normalize_answer,
    rouge,
    sentence_bleu,
)

# --------------------------------------------------------------------------- exact match


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The Cat!", "cat"),
        ("  an   apple,\ta day ", "apple day"),
        ("Theory of everything", "theory of everything"),  # 'the' only as a whole word
        # Punctuation goes before articles (official order): "a.b" -> "ab", not "b".
        ("a.b", "ab"),
        ("end, the", "end"),
        ("Paris\u3002", "paris\u3002"),  # only ASCII punctuation is removed, as in SQuAD
    ],
)
def test_normalize_answer_follows_squad(raw: str, normalised: str) -> None:
    assert normalize_answer(raw) == normalised


def test_exact_match_uses_normalisation() -> None:
    assert exact_match("The answer: 42.", "answer 42") == 1.0
    assert exact_match("42", "forty-two") == 0.0
    assert exact_match("An Apple", "apple") == 1.0


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_normalize_answer_is_idempotent(text: str) -> None:
    once = normalize_answer(text)
    assert normalize_answer(once) == once


# --------------------------------------------------------------------------- BLEU


def test_sentence_bleu_hand_computed_effective_order() -> None:
    # 3 of 3 unigrams, 2/2 bigrams, 1/1 trigrams match; no 4-grams -> effective order 3, so the
    # geometric mean is 1 and BLEU = BP = exp(1 - 6/3).
    result = sentence_bleu("the cat sat", "the cat sat on the mat")
    assert result.score == pytest.approx(100 * math.exp(-1), abs=1e-9)
    assert result.bp == pytest.approx(math.exp(-1))
    assert (result.sys_len, result.ref_len) == (3, 6)
    assert "eff:yes" in result.signature and "tok:13a" in result.signature
    assert "nrefs:1" in result.signature


def test_corpus_bleu_reproduces_sacrebleu_documented_example() -> None:
    # sacrebleu README: BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ... hyp_len = 17 ref_len = 18)
    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    refs = [
        ["The dog bit the man.", "The dog had bit the man."],
        ["It was not unexpected.", "No one was surprised."],
        ["The man bit him first.", "The man had bitten the dog."],
    ]
    result = corpus_bleu(hyps, refs)
    assert round(result.score, 2) == 48.53
    assert [round(p, 1) for p in result.precisions] == [82.4, 50.0, 45.5, 37.5]
    assert round(result.bp, 3) == 0.943
    assert (result.sys_len, result.ref_len) == (17, 18)
    assert result.signature.startswith("nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:")


def test_corpus_bleu_is_not_mean_of_sentence_bleu() -> None:
    hyps = ["the quick brown fox jumps over the lazy dog today", "a cat"]
    refs = ["the quick brown fox jumps over the lazy dog today", "the cat sat on the mat"]
    corpus = corpus_bleu(hyps, refs).score
    mean_sentence = sum(sentence_bleu(h, r).score for h, r in zip(hyps, refs, strict=True)) / 2
    direct = BLEU().corpus_score(hyps, [refs]).score
    assert corpus == pytest.approx(direct)
    assert abs(corpus - mean_sentence) > 10


def test_bleu_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no hypotheses"):
        corpus_bleu([], [])
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="same number of references"):
        corpus_bleu(["a", "b"], [["a"], ["b", "c"]])
    with pytest.raises(ValueError, match="tokenizer"):
        sentence_bleu("a", "a", tokenize="no-such-tokenizer")
    with pytest.raises(ValueError, match="reference"):
        sentence_bleu("a", [])


# --------------------------------------------------------------------------- ROUGE


def test_rouge_readme_example_matches_hand_computation() -> None:
    # rouge-score README pair. With Porter stemming the target has 9 tokens, the prediction 8:
    # 6 shared unigrams -> F = 2*6/17; 2 shared bigrams of 8 and 7 -> F = 4/15;
    # LCS "the quick brown jump the" = 5 -> F = 10/17.
    result = rouge(
        "The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog"
    )
    assert result.rouge1 == pytest.approx(12 / 17)
    assert result.rouge2 == pytest.approx(4 / 15)
    assert result.rougeL == pytest.approx(10 / 17)
    assert result.tokenizer == "default"
    assert result.warnings == ()


def test_default_tokenizer_scores_cyrillic_zero_unicode_tokenizer_does_not() -> None:
    prediction, reference = "кошка сидела на ковре", "кошка сидит на ковре"
    forced_default = rouge(prediction, reference, tokenizer="default")
    assert forced_default.rouge1 == 0.0
    assert forced_default.warnings  # the caller is told the score is meaningless
    unicode = rouge(prediction, reference, tokenizer="unicode")
    assert unicode.rouge1 == pytest.approx(3 / 4)  # кошка, на, ковре shared of 4 tokens each
    assert unicode.rougeL == pytest.approx(3 / 4)


def test_auto_mode_picks_unicode_tokenizer_for_non_latin_reference_with_warning() -> None:
    result = rouge("猫坐在地毯上", "猫坐在垫子上")
    assert result.tokenizer == "unicode"
    assert result.rouge1 == pytest.approx(4 / 6)  # per-character: 猫 坐 在 上 shared
    assert any("Unicode tokenizer" in w for w in result.warnings)


def test_auto_mode_decides_on_the_reference_only() -> None:
    # Same reference -> same tokenizer for both systems of an A/B pair, whatever they output.
    assert rouge("кошка сидит", "the cat sits").tokenizer == "default"
    assert rouge("the cat sits", "кошка сидит").tokenizer == "unicode"


def test_unicode_tokenizer_segments_scripts() -> None:
    tokens = UnicodeTokenizer(use_stemmer=False).tokenize("हिन्दी भाषा abc中文 snake_case Café")
    # Devanagari words keep their combining marks; Han splits per character; '_' separates.
    assert tokens == ["हिन्दी", "भाषा", "abc", "中", "文", "snake", "case", "café"]


def test_unicode_tokenizer_stems_like_rouge_score() -> None:
    assert UnicodeTokenizer().tokenize("Jumps running") == ["jump", "run"]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127)))
def test_unicode_tokenizer_equals_default_tokenizer_on_ascii(text: str) -> None:
    expected = tokenizers.DefaultTokenizer(use_stemmer=True).tokenize(text)
    assert UnicodeTokenizer(use_stemmer=True).tokenize(text) == expected


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_default_mode_tokens_equal_rouge_score_default_tokenizer(text: str) -> None:
    # Our "default" tokenizer only memoises stemming; tokens must be rouge-score's exactly.
    expected = tokenizers.DefaultTokenizer(use_stemmer=True).tokenize(text)
    assert generation._scorer("default")._tokenizer.tokenize(text) == expected


def test_default_mode_scores_equal_plain_rouge_score() -> None:
    plain = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    pairs = [
        ("The runners were running quickly", "A runner runs quickly"),
        ("Generalizations generalize badly.", "generalization is bad"),
    ]
    for prediction, reference in pairs:
        expected = plain.score(reference, prediction)
        result = rouge(prediction, reference, tokenizer="default")
        assert result.rouge1 == expected["rouge1"].fmeasure
        assert result.rouge2 == expected["rouge2"].fmeasure
        assert result.rougeL == expected["rougeL"].fmeasure


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello world", False),
        ("Привет мир", True),
        ("Привет world", True),  # 6 Cyrillic vs 5 Latin letters
        ("Привет big world", False),  # 6 of 14 letters non-Latin
        ("абв abc", False),  # exactly half is not "mostly"
        ("café au lait, naïve", False),  # accented Latin is Latin
        ("東京 Tokyo Tower Japan", False),  # 2 Han vs 15 Latin letters
        ("123 !!! ...", False),  # no letters at all
        ("", False),
        ("مرحبا بالعالم", True),
    ],
)
def test_mostly_non_latin(text: str, expected: bool) -> None:
    assert mostly_non_latin(text) is expected


def test_rouge_scorer_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    original = generation.rouge_scorer.RougeScorer

    class Counting(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            built.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(generation.rouge_scorer, "RougeScorer", Counting)
    generation._scorer.cache_clear()
    try:
        for i in range(30):
            rouge(f"output number {i}", f"reference number {i}")
    finally:
        generation._scorer.cache_clear()
    assert len(built) == 1


def test_rouge_rejects_unknown_tokenizer_mode() -> None:
    with pytest.raises(ValueError, match="tokenizer"):
        rouge("a", "b", tokenizer="whitespace")  # type: ignore[arg-type]
