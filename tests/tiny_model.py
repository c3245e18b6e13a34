"""Build a tiny GPT-2 causal LM and its tokenizer on disk, with no network access.

Tests (and the CPU benchmarks) cannot download weights, so this module trains a byte-level BPE
tokenizer (the GPT-2 recipe, via the ``tokenizers`` library) on a small corpus generated
deterministically below, wraps it as a ``transformers.PreTrainedTokenizerFast`` and builds a
``GPT2LMHeadModel`` from a tiny ``GPT2Config``. The model is trained for a few steps on the same
corpus so that its next-token distribution is not uniform (judge verdict lines such as
``Verdict: [[A]]`` are part of the corpus, so the model learns that ``[[`` is followed by a
letter). Everything is seeded: two calls produce the same files.

``n_positions`` defaults to 128 so that texts longer than the context exercise the
sliding-window perplexity path.

torch, tokenizers and transformers are imported inside the functions so that importing this
module (for example from a conftest) costs nothing.
"""

from __future__ import annotations

import random
from pathlib import Path

BOS = "<s>"
EOS = "</s>"
PAD = "<pad>"

# A minimal ChatML-like template so that judge code exercises ``apply_chat_template`` exactly
# as it would with a real instruction-tuned model.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_SUBJECTS = [
    "the model",
    "the answer",
    "a student",
    "the teacher",
    "my friend",
    "the reviewer",
    "the system",
    "the assistant",
    "a scientist",
    "the city",
    "the river",
    "an engineer",
    "the report",
    "the first response",
    "the second response",
    "the old library",
]
_VERBS = [
    "explains",
    "describes",
    "answers",
    "improves",
    "compares",
    "summarises",
    "measures",
    "writes",
    "reads",
    "builds",
    "tests",
    "checks",
    "repeats",
    "translates",
    "solves",
]
_OBJECTS = [
    "the question",
    "a short story",
    "the data",
    "every detail",
    "the main idea",
    "a simple proof",
    "the recipe",
    "the weather",
    "the history of science",
    "a clear plan",
    "the code",
    "the results",
    "a long letter",
    "the difference",
    "the evidence",
]
_ADVERBS = [
    "carefully",
    "quickly",
    "clearly",
    "politely",
    "badly",
    "accurately",
    "briefly",
    "in detail",
    "with care",
    "without errors",
    "step by step",
    "once again",
]
_QUESTIONS = [
    "What is the capital of France?",
    "How do plants make food?",
    "Why is the sky blue?",
    "Explain recursion in one sentence.",
    "Write a haiku about rain.",
    "What is two plus two?",
    "Summarise the plot of Hamlet.",
    "How does a bicycle work?",
]


def tiny_corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    """Return ``n_lines`` deterministic English-like lines, including judge-style verdicts.

    The mix covers plain prose, questions and answers, numbers, and the answer formats the judge
    templates read (``[[A]]``, ``[[B]]``, ``[[C]]``, ``[RESULT] 3``, ``Rating: [[7]]``) so that the
    BPE tokenizer learns them as separate, sensible tokens.
    """
    rng = random.Random(seed)
    lines: list[str] = []
    for i in range(n_lines):
        kind = i % 5
        sentence = (
            f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} "
            f"{rng.choice(_OBJECTS)} {rng.choice(_ADVERBS)}."
        )
        if kind == 0:
            lines.append(sentence)
        elif kind == 1:
            lines.append(f"{rng.choice(_QUESTIONS)} {sentence} It took {rng.randint(1, 99)} days.")
        elif kind == 2:
            verdict = rng.choice("ABC")
            lines.append(f"{sentence} Verdict: [[{verdict}]]")
        elif kind == 3:
            lines.append(f"{sentence} Rating: [[{rng.randint(1, 10)}]]")
        else:
            result = rng.choice(["1", "2", "3", "4", "5", "A", "B"])
            lines.append(f"Feedback: {sentence} [RESULT] {result}")
    return lines


def build_tiny_tokenizer(vocab_size: int = 600, seed: int = 0):  # -> PreTrainedTokenizerFast
    """Train a byte-level BPE tokenizer on :func:`tiny_corpus` and wrap it for transformers.

    The GPT-2 pre-tokenizer regex splits letters, digits and punctuation into separate pieces,
    so ``[[A]]`` always tokenizes as ``[[`` / ``A`` / ``]]`` and never merges across the verdict.
    BOS is *not* added automatically (like GPT-2), which exercises the explicit BOS handling of
    the perplexity code.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tiny_corpus(seed=seed), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, model_max_length=128
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_tiny_gpt2(
    directory: str | Path,
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 2,
    n_positions: int = 128,
    train_steps: int = 40,
    seed: int = 0,
) -> str:
    """Build, briefly train and save a tiny GPT-2 model plus tokenizer; return the directory.

    Args:
        directory: folder to write ``config.json``, weights and tokenizer files into (created).
        n_layer, n_embd, n_head, n_positions: ``GPT2Config`` shape. ``n_positions`` is the
            context window in tokens; keep it small so the sliding-window path is exercised.
        train_steps: AdamW steps on :func:`tiny_corpus` (0 leaves the random initialisation).
        seed: seeds torch and the corpus so repeated builds are identical.

    Returns:
        The directory as a string, loadable with ``AutoModelForCausalLM.from_pretrained``.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer(seed=seed)
    tokenizer.model_max_length = n_positions
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    if train_steps > 0:
        _train(model, tokenizer, steps=train_steps, seq_len=min(64, n_positions), seed=seed)
    model.eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def _train(model, tokenizer, *, steps: int, seq_len: int, seed: int) -> None:
    """A few AdamW steps of next-token prediction on the tiny corpus (random contiguous chunks)."""
    import torch

    ids: list[int] = []
    for line in tiny_corpus(seed=seed):
        ids.extend([tokenizer.bos_token_id, *tokenizer.encode(line, add_special_tokens=False)])
        ids.append(tokenizer.eos_token_id)
    data = torch.tensor(ids, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    # Ops this small do not parallelise; on a busy 2-core CI box, intra-op threads spin against
    # each other and make training ~10x slower. One thread is fastest and deterministic.
    torch.set_num_threads(1)
    model.train()
    try:
        for _ in range(steps):
            starts = torch.randint(0, len(data) - seq_len - 1, (16,), generator=gen)
            batch = torch.stack([data[s : s + seq_len] for s in starts.tolist()])
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
        model.eval()
