"""Benchmark: logprob pairwise judging vs generate-then-parse judging on the same model and pairs.

Both judges are :class:`scoring.lm.judge_local.LocalJudge` objects over one model, run through
:func:`scoring.lm.judge.judge_pairs` (both presentation orders per pair) in the same process.
The script prints pairs/s for each, the speed ratio, how many of the peer's answers could be
parsed, and the verdict agreement between the two on the pairs where both gave a verdict.

* logprob judge: one forward pass per prompt, verdict read from the next-token distribution
  after the answer prefix (``[[``).
* peer: greedy ``generate`` (up to ``--peer-max-new-tokens``), then strict parsing. The default
  peer is the MT-Bench paper's own judging: the explanation-first prompt
  (``mtbench_pairwise_explained``) with 256 new tokens. ``--peer-template mtbench_pairwise
  --peer-max-new-tokens 8`` is the cheapest possible peer (verdict only, a handful of tokens):
  its cost is dominated by the same prompt prefill, so expect a ratio near 1 there; the
  logprob judge's advantage over it is calibrated probabilities and no parse failures, not
  speed.

Models are built without downloads. ``gpt2-4x256`` (default), ``gpt2-124m`` and ``mistral-7b``
are random models from config (on a GPU: ``--device cuda --config mistral-7b --peak-tflops
989``); random weights never emit EOS, so the peer always generates its full budget, which is
the cost a real judge pays when it writes that much. Verdict agreement with random weights is
noise (the peer rarely writes a parseable verdict). ``tiny-trained`` is the test tokenizer with
a 4-layer, 256-dim GPT-2 trained for a few steps; it stops generating early, so its timings
understate the peer's cost.

Verdict agreement needs a judge that can judge: ``--model PATH_OR_NAME`` loads real weights
through the production loader (``scoring.lm.loading.load_causal_lm``, e.g. a local copy of
prometheus-7b-v2.0 on a GPU machine) instead of a ``--config`` model; the script then prints
the peer's parse rate and the agreement per presentation order and per pair verdict.

``--smoke`` (what the test suite runs): the tests' tiny GPT-2 (2 layers, 64 dims, 1,024
positions, random weights) saved to a temp folder and loaded back through the production loader
(``from_pretrained``), on CPU with one thread, 3 pairs, an 8-token peer; no download.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONFIGS = ("tiny-trained", "gpt2-4x256", "gpt2-124m", "mistral-7b")


def make_pairs(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(question, base, tuned) with answers of 1 to 6 corpus sentences."""
    from tests.tiny_model import _QUESTIONS, tiny_corpus

    rng = random.Random(seed)
    lines = [line for line in tiny_corpus(1000, seed=seed + 1) if "[[" not in line]
    pairs = []
    for _ in range(n):
        base = " ".join(rng.choice(lines) for _ in range(rng.randint(1, 6)))
        tuned = " ".join(rng.choice(lines) for _ in range(rng.randint(1, 6)))
        pairs.append((rng.choice(_QUESTIONS), base, tuned))
    return pairs


def load_model(name: str, device: str, dtype_name: str, workdir: str):
    import torch

    from scoring.lm.loading import load_causal_lm
    from tests.tiny_model import build_tiny_gpt2, build_tiny_tokenizer

    if name == "tiny-trained":
        path = build_tiny_gpt2(
            Path(workdir) / "judge",
            n_layer=4,
            n_embd=256,
            n_head=4,
            n_positions=1024,
            train_steps=60,
        )
        loaded = load_causal_lm(path, device=device, dtype=dtype_name)
        return loaded.model, loaded.tokenizer
    from bench.bench_perplexity import build_model

    tokenizer = build_tiny_tokenizer()
    tokenizer.model_max_length = 1024
    model = build_model(name, tokenizer, device=device, dtype=getattr(torch, dtype_name))
    return model, tokenizer


def build_smoke_model(workdir: str) -> str:
    """The tests' tiny GPT-2 on disk, with a context long enough for the judge prompts."""
    from tests.tiny_model import build_tiny_gpt2

    return build_tiny_gpt2(Path(workdir) / "smoke", n_positions=1024, train_steps=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--config", default="gpt2-4x256", choices=CONFIGS)
    parser.add_argument(
        "--model", default=None, help="real weights (path or name) instead of a --config model"
    )
    parser.add_argument("--dtype", default=None, help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--n-pairs", type=int, default=24)
    parser.add_argument("--template", default="mtbench_pairwise")
    parser.add_argument("--peer-template", default="mtbench_pairwise_explained")
    parser.add_argument("--peer-max-new-tokens", type=int, default=256)
    parser.add_argument(
        "--peer-force-prefix",
        action="store_true",
        help="peer continues from the answer prefix ([[) instead of generating freely",
    )
    parser.add_argument("--max-tokens-per-batch", type=int, default=8192)
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak dense TFLOP/s")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny GPT-2 via from_pretrained, CPU, 3 pairs"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.dtype, args.threads = "cpu", None, 1
        args.n_pairs, args.peer_max_new_tokens = 3, 8
        os.environ["HF_HUB_OFFLINE"] = "1"  # the smoke run never downloads anything

    import torch
    from transformers.utils import logging as hf_logging

    from bench.bench_perplexity import matmul_params
    from scoring.lm.judge import judge_pairs
    from scoring.lm.judge_local import LocalJudge
    from scoring.lm.loading import resolve_device, resolve_dtype

    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype_name = resolve_dtype(device, args.dtype)
    if args.smoke:
        from scoring.lm.loading import load_causal_lm

        with tempfile.TemporaryDirectory() as workdir:
            loaded = load_causal_lm(build_smoke_model(workdir), device=device, dtype=dtype_name)
        model, tokenizer = loaded.model, loaded.tokenizer
        args.config = "tiny GPT-2 (smoke)"
    elif args.model:
        from scoring.lm.loading import load_causal_lm

        loaded = load_causal_lm(args.model, device=device, dtype=dtype_name)
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        with tempfile.TemporaryDirectory() as workdir:
            model, tokenizer = load_model(args.config, device, dtype_name, workdir)
    pairs = make_pairs(args.n_pairs, args.seed)
    common = {
        "model": model,
        "tokenizer": tokenizer,
        "max_tokens_per_batch": args.max_tokens_per_batch,
    }
    fast = LocalJudge(template=args.template, **common)
    peer = LocalJudge(
        template=args.peer_template,
        mode="generate",
        max_new_tokens=args.peer_max_new_tokens,
        force_prefix_in_generate=args.peer_force_prefix,
        **common,
    )
    prompt_tokens = sum(
        len(fast.encode_prompt(fast.template.render(q, a, b), with_prefix=True))
        for q, base, tuned in pairs
        for a, b in ((base, tuned), (tuned, base))
    )

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    # Warm-up on two pairs for both judges.
    judge_pairs(pairs[:2], fast, on_error="record")
    judge_pairs(pairs[:2], peer, on_error="record")
    sync()
    t0 = time.perf_counter()
    fast_results = judge_pairs(pairs, fast, on_error="record")
    sync()
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    peer_results = judge_pairs(pairs, peer, on_error="record")
    sync()
    t_peer = time.perf_counter() - t0

    parsed = [(f, p) for f, p in zip(fast_results, peer_results, strict=True) if p.error is None]
    agree = sum(f.verdict == p.verdict for f, p in parsed)
    # Per presentation order: the label each judge chose for the same prompt.
    order_agree, order_parsed = 0, 0
    for f, p in zip(fast_results, peer_results, strict=True):
        for order in ("tuned_first", "base_first"):
            fp, pp = f.order_probabilities.get(order), p.order_probabilities.get(order)
            if fp and pp:
                order_parsed += 1
                order_agree += max(fp, key=fp.get) == max(pp, key=pp.get)
    n_params = matmul_params(model)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(
        f"device={device} ({name}, {torch.get_num_threads()} threads) "
        f"model={args.model or args.config} "
        f"dtype={dtype_name} params(matmul)={n_params / 1e6:.1f}M context={fast.context_length}"
    )
    print(
        f"pairs={len(pairs)} prompts={2 * len(pairs)} (both orders) prompt tokens={prompt_tokens} "
        f"(mean {prompt_tokens / (2 * len(pairs)):.0f})"
    )
    print(
        f"peer: template={peer.template.name} max_new_tokens={peer.max_new_tokens} "
        f"force_prefix={args.peer_force_prefix}"
    )
    tflops = 2 * n_params * prompt_tokens / t_fast / 1e12
    line = (
        f"logprob judge : {t_fast:8.2f} s  {len(pairs) / t_fast:8.2f} pairs/s  "
        f"{prompt_tokens / t_fast:10.0f} prompt tokens/s  {tflops:.3f} TFLOP/s"
    )
    if args.peak_tflops:
        line += f" ({100 * tflops / args.peak_tflops:.1f}% of {args.peak_tflops:g} peak)"
    print(line)
    print(f"generate+parse: {t_peer:8.2f} s  {len(pairs) / t_peer:8.2f} pairs/s")
    print(f"speedup logprob/generate: {t_peer / t_fast:.2f}x")
    print(
        f"peer answers parsed: {order_parsed}/{2 * len(pairs)} prompts, {len(parsed)}/{len(pairs)}"
        " pairs (both orders)"
    )
    print(
        "verdict agreement logprob vs peer: per order "
        + (
            f"{order_agree}/{order_parsed} = {order_agree / order_parsed:.1%}"
            if order_parsed
            else "n/a"
        )
        + "; pair verdict (both orders combined) "
        + (f"{agree}/{len(parsed)} = {agree / len(parsed):.1%}" if parsed else "n/a")
    )
    bias = sum(r.position_bias for r in fast_results)
    print(f"logprob judge position-bias events: {bias}/{len(pairs)}")


if __name__ == "__main__":
    main()
