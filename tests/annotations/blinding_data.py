"""Paired outputs for blinding tests: both sides' content from one distribution, so only the
surface habits added on top can tell them apart."""

from __future__ import annotations

import random

WORDS = [
    "the",
    "model",
    "answer",
    "data",
    "result",
    "value",
    "system",
    "list",
    "table",
    "code",
    "query",
    "index",
    "cache",
    "step",
    "first",
    "then",
    "because",
    "while",
    "output",
    "input",
    "error",
    "fix",
    "test",
    "build",
    "release",
    "user",
    "page",
]


def content(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(1, 4)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 18))]
        sentences.append(" ".join(words).capitalize() + rng.choice(".!?"))
    return " ".join(sentences)


def sure_pairs(n: int, *, seed: int = 11) -> list[tuple[str, str]]:
    """(base, tuned): the tuned side always starts with a space and "Sure!" and ends with a
    newline, like a chat-template artefact of a real fine-tune."""
    rng = random.Random(seed)
    return [(content(rng), " Sure! " + content(rng) + "\n") for _ in range(n)]
