"""Benchmark: batched perplexity (scoring.lm.perplexity) vs a naive one-text-at-a-time loop.

Both run on the same randomly initialised model and the same texts in one process; the script
prints texts/s and tokens/s for each, the speed ratio, and the largest relative difference
between the two sets of per-text perplexities (they must agree).

The model is built from a config in memory (no download): by default a GPT-2 with 4 layers,
256 dims and 1024 positions; ``--config mistral-7b`` builds a Mistral-7B-shaped model
(random weights, bf16 on CUDA) so the same script measures a real architecture on a GPU:

    python bench/bench_perplexity.py                                   # CPU, small GPT-2
    python bench/bench_perplexity.py --lengths short,mixed,long        # three workloads
    python bench/bench_perplexity.py --device cuda --config mistral-7b --peak-tflops 989

Workloads (``--lengths``, log-uniform token lengths): ``mixed`` (default headline: 300 texts of
8 to ``--max-text-tokens`` = 400 tokens), ``short`` (300 texts of 8-64 tokens: classification
labels, short answers) and ``long`` (100 texts of 256-1023 tokens, within one window). Each is
measured separately against the naive loop and all are printed.

FLOPs are estimated as ``2 * N * tokens`` for forward passes, with N the parameter count
without the input-embedding table (a lookup, not a matmul); attention's quadratic term is
ignored, so the printed utilisation is a slight underestimate for long texts.

``--smoke`` (what the test suite runs): the tests' tiny GPT-2 (2 layers, 64 dims, 1,024
positions, random weights) saved to a temp folder and loaded back through the production loader
(``from_pretrained``), on CPU with one thread, 6 texts of each workload; it fails if the two
paths' perplexities differ by more than 1e-4 (relative). No download.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONFIGS = ("gpt2-4x256", "gpt2-124m", "mistral-7b")


def build_model(name: str, tokenizer, device: str, dtype, vocab_size: int = 8192):
    """A randomly initialised causal LM of the named shape, on ``device`` in ``dtype``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if name == "gpt2-4x256":
        config = GPT2Config(
            vocab_size=vocab_size, n_positions=1024, n_embd=256, n_layer=4, n_head=4, **special
        )
        cls = GPT2LMHeadModel
    elif name == "gpt2-124m":
        config = GPT2Config(vocab_size=vocab_size, n_positions=1024, **special)
        cls = GPT2LMHeadModel
    elif name == "mistral-7b":
        config = MistralConfig(
            vocab_size=32000,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=32768,
            **special,
        )
        cls = MistralForCausalLM
    else:
        raise SystemExit(f"unknown --config {name!r}; choose from {CONFIGS}")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build directly in the target dtype (7B in fp32 = 28 GB)
    try:
        with torch.device(device):
            model = cls(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def matmul_params(model) -> int:
    """Parameters that take part in matmuls (excludes the input embedding unless tied)."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    tied = out is not None and out.weight.data_ptr() == emb.data_ptr()
    positions = getattr(getattr(model, "transformer", None), "wpe", None)
    pos = positions.weight.numel() if positions is not None else 0
    return total - pos - (0 if tied else emb.numel())


# name -> (min tokens, max tokens or None for --max-text-tokens, default number of texts)
WORKLOADS = {"short": (8, 64, 300), "mixed": (8, None, 300), "long": (256, 1023, 100)}


def make_texts(
    tokenizer, n: int, seed: int, max_tokens: int, min_tokens: int = 8, hard_max: int | None = None
) -> list[str]:
    """``n`` texts with log-uniform token lengths from ``min_tokens`` to ``max_tokens``.

    Whole corpus lines are appended until the target is reached, so a text may overshoot it by
    part of a line; ``hard_max`` trims words until the text has at most that many tokens.
    """
    from tests.tiny_model import tiny_corpus

    rng = random.Random(seed)
    lines = tiny_corpus(2000, seed=seed)
    texts = []
    for _ in range(n):
        target = int(math.exp(rng.uniform(math.log(min_tokens), math.log(max_tokens))))
        words: list[str] = []
        while len(tokenizer.encode(" ".join(words), add_special_tokens=False)) < target:
            words.extend(rng.choice(lines).split())
        while hard_max and len(tokenizer.encode(" ".join(words), add_special_tokens=False)) > (
            hard_max
        ):
            words.pop()
        texts.append(" ".join(words))
    return texts


def naive_perplexities(model, tokenizer, texts, window: int) -> tuple[list[float], int]:
    """One text per forward pass, no padding, no sorting: what a first script would do."""
    import torch

    device = next(model.parameters()).device
    out, n_tokens = [], 0
    with torch.inference_mode():
        for text in texts:
            ids = [tokenizer.bos_token_id, *tokenizer.encode(text, add_special_tokens=False)]
            ids = ids[:window]
            x = torch.tensor([ids], device=device)
            logp = model(input_ids=x).logits[0, :-1].float().log_softmax(-1)
            nll = -logp.gather(-1, x[0, 1:, None]).sum().item()
            out.append(math.exp(nll / (len(ids) - 1)))
            n_tokens += len(ids)
    return out, n_tokens


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--config", default="gpt2-4x256", choices=CONFIGS)
    parser.add_argument("--dtype", default=None, help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument(
        "--lengths",
        default="mixed",
        help=f"comma-separated workloads from {sorted(WORKLOADS)} (default: mixed)",
    )
    parser.add_argument("--n-texts", type=int, default=None, help="default: per workload")
    parser.add_argument("--max-text-tokens", type=int, default=400, help="mixed workload's max")
    parser.add_argument(
        "--max-tokens-per-batch", type=int, default=None, help="default: 1024 CPU, 8192 GPU"
    )
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak dense TFLOP/s")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny GPT-2 via from_pretrained, CPU, 6 texts each"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.dtype, args.threads, args.window = "cpu", None, 1, 1024
        args.lengths, args.n_texts = "short,mixed,long", 6
        os.environ["HF_HUB_OFFLINE"] = "1"  # the smoke run never downloads anything

    import torch

    from scoring.lm.loading import resolve_device, resolve_dtype
    from tests.tiny_model import build_tiny_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype_name = resolve_dtype(device, args.dtype)
    dtype = getattr(torch, dtype_name)
    if args.smoke:
        from transformers.utils import logging as hf_logging

        from scoring.lm.loading import load_causal_lm
        from tests.tiny_model import build_tiny_gpt2

        hf_logging.disable_progress_bar()

        with tempfile.TemporaryDirectory() as workdir:
            path = build_tiny_gpt2(workdir, n_positions=args.window, train_steps=0)
            loaded = load_causal_lm(path, device=device, dtype=dtype_name)
        model, tokenizer = loaded.model, loaded.tokenizer
        args.config = "tiny GPT-2 (smoke)"
    else:
        tokenizer = build_tiny_tokenizer()
        tokenizer.model_max_length = args.window
        model = build_model(args.config, tokenizer, device=device, dtype=dtype)
    n_params = matmul_params(model)
    names = [w.strip() for w in args.lengths.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown or not names:
        raise SystemExit(f"unknown --lengths {unknown}; choose from {sorted(WORKLOADS)}")
    print(
        f"device={device} ({torch.cuda.get_device_name() if device.startswith('cuda') else 'cpu'}"
        f", {torch.get_num_threads()} threads) config={args.config} dtype={dtype_name} "
        f"params(matmul)={n_params / 1e6:.1f}M"
    )
    summary = []
    for name in names:
        low, high, n_default = WORKLOADS[name]
        high = min(high or args.max_text_tokens, args.window - 1)
        # BOS + text must fit one window: the naive loop does not slide.
        texts = make_texts(
            tokenizer, args.n_texts or n_default, args.seed, high, low, hard_max=args.window - 1
        )
        speedup, max_rel = run_workload(name, model, tokenizer, texts, n_params, device, args)
        summary.append(f"{name} ({low}-{high} tokens): {speedup:.2f}x")
        if args.smoke and not max_rel <= 1e-4:
            raise SystemExit(f"FAIL: [{name}] batched and naive perplexities differ by {max_rel}")
    if len(summary) > 1:
        print("summary speedup batched/naive: " + "; ".join(summary))


def run_workload(name, model, tokenizer, texts, n_params, device, args) -> tuple[float, float]:
    """Time both paths on ``texts``, print the figures; return the speedup and the largest
    relative difference of the per-text perplexities."""

    from scoring.lm.perplexity import compute_perplexity

    # Warm-up (allocator, kernels) on a few texts for both paths.
    compute_perplexity(model, tokenizer, texts[:8], window=args.window)
    naive_perplexities(model, tokenizer, texts[:8], args.window)
    sync(device)

    t0 = time.perf_counter()
    report = compute_perplexity(
        model, tokenizer, texts, window=args.window, max_tokens_per_batch=args.max_tokens_per_batch
    )
    sync(device)
    t_batched = time.perf_counter() - t0

    t0 = time.perf_counter()
    naive, naive_tokens = naive_perplexities(model, tokenizer, texts, args.window)
    sync(device)
    t_naive = time.perf_counter() - t0

    # Processed tokens = scored tokens + one BOS per text (no text exceeds the window here).
    tokens = report.total_tokens + len(texts)
    max_rel = max(abs(r.perplexity - p) / p for r, p in zip(report.results, naive, strict=True))
    print(
        f"[{name}] texts={len(texts)} tokens={tokens} (per text min/median/max "
        f"{min(r.n_tokens for r in report.results)}/"
        f"{sorted(r.n_tokens for r in report.results)[len(texts) // 2]}/"
        f"{max(r.n_tokens for r in report.results)}) "
        f"max_tokens_per_batch={args.max_tokens_per_batch or 'auto'}"
    )
    for label, seconds, n_tok in (
        ("batched", t_batched, tokens),
        ("naive  ", t_naive, naive_tokens),
    ):
        tflops = 2 * n_params * n_tok / seconds / 1e12
        line = (
            f"{label}: {seconds:8.2f} s  {len(texts) / seconds:9.1f} texts/s  "
            f"{n_tok / seconds:11.0f} tokens/s  {tflops:8.3f} TFLOP/s"
        )
        if args.peak_tflops:
            line += f"  ({100 * tflops / args.peak_tflops:.1f}% of {args.peak_tflops:g} peak)"
        print(line)
    print(f"speedup batched/naive: {t_naive / t_batched:.2f}x")
    print(f"max relative difference of per-text perplexity: {max_rel:.2e}")
    print(
        f"corpus_perplexity_token_weighted={report.corpus_perplexity_token_weighted:.2f} "
        f"mean_per_text_perplexity={report.mean_per_text_perplexity:.2f}"
    )
    return t_naive / t_batched, max_rel


if __name__ == "__main__":
    main()
