"""Identity-leak detection: self-descriptions and study model names, word-boundary aware."""

from __future__ import annotations

import pytest

from scoring.lm.identity import find_identity_leaks, has_identity_leak, model_name_variants

STUDY_MODELS = ["acme/support-bot-7b", "meta-llama/Llama-3.1-8B-Instruct"]


@pytest.mark.parametrize(
    ("text", "expected_match"),
    [
        ("As an AI developed by OpenAI, I cannot browse.", "developed by OpenAI"),
        ("I am Llama, a helpful assistant.", "I am Llama"),
        ("Hello! I'm Claude.", "I'm Claude"),
        ("i was trained by meta on public data", "trained by meta"),
        ("I am a large language model, trained by Google.", "trained by Google"),
        ("This model was fine-tuned by Mistral AI.", "fine-tuned by Mistral AI"),
        ("I am an OpenAI language model.", "I am an OpenAI language model"),
        ("My name is Gemini.", "My name is Gemini"),
        ("As ChatGPT, I would say...", "As ChatGPT,"),
        ("Created by Anthropic to be helpful.", "Created by Anthropic"),
    ],
)
def test_self_descriptions_are_flagged(text, expected_match):
    leaks = find_identity_leaks(text)
    assert [leak.match for leak in leaks] == [expected_match]
    leak = leaks[0]
    assert text[leak.start : leak.end] == leak.match
    assert leak.reason in {"names its maker", "names its model"}


@pytest.mark.parametrize(
    "text",
    [
        "The metadata was produced by metaphorical analysis.",  # "Meta" inside words
        "Llamas and alpacas are camelids.",
        "I am happy to help with your question.",
        "I am Phil, your travel agent.",  # "Phi" must not match inside "Phil"
        "Llama is an open-weights model family.",  # third person, not a study model
        "The mistral is a cold wind in southern France.",
        "It was developed by Googleplex engineers.",
        "",
    ],
)
def test_ordinary_text_is_not_flagged(text):
    assert find_identity_leaks(text) == []
    assert not has_identity_leak(text)


def test_study_model_names_full_id_and_tail_with_flexible_separators():
    text = "Answer from acme/support-bot-7b. Also SUPPORT BOT 7B and support_bot_7b agree."
    leaks = find_identity_leaks(text, STUDY_MODELS)
    assert [leak.match for leak in leaks] == [
        "acme/support-bot-7b",
        "SUPPORT BOT 7B",
        "support_bot_7b",
    ]
    assert all(leak.reason == "names a study model: acme/support-bot-7b" for leak in leaks)
    llama = find_identity_leaks("Served by Llama 3.1 8B Instruct.", STUDY_MODELS)
    assert [leak.match for leak in llama] == ["Llama 3.1 8B Instruct"]


def test_study_model_names_respect_word_boundaries():
    assert find_identity_leaks("the support-bot-7bx is new", STUDY_MODELS) == []
    assert find_identity_leaks("xsupport-bot-7b", STUDY_MODELS) == []
    assert model_name_variants("acme/support-bot-7b") == ["acme/support-bot-7b", "support-bot-7b"]
    assert model_name_variants("org/ab") == ["org/ab"]  # tails under 3 characters are skipped


def test_overlapping_hits_are_merged_and_sorted():
    text = "I'm Claude, made by Anthropic. I am Llama-3.1-8B-Instruct."
    leaks = find_identity_leaks(text, STUDY_MODELS)
    assert [leak.start for leak in leaks] == sorted(leak.start for leak in leaks)
    spans = [(leak.start, leak.end) for leak in leaks]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert {leak.reason for leak in leaks} >= {"names its model", "names its maker"}
