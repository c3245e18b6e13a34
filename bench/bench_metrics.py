"""Benchmark: our registry path vs calling sacrebleu / rouge-score directly.

Generates N synthetic (output, reference) pairs deterministically (numpy Generator, fixed seed;
15-40 word sentences drawn Zipf-like from a fixed vocabulary; outputs are edited copies of the
references, some identical), then times, in the same process:

* ours:   ``score_outputs("generation", ...)`` with exact_match, sentence_bleu, rouge1/2/L and
          corpus_bleu (one registry call);
* direct: a plain loop calling ``BLEU(effective_order=True).sentence_score``,
          ``RougeScorer([...], use_stemmer=True).score`` and SQuAD exact match, then one
          ``BLEU().corpus_score``.

Caches that would let one path profit from the other (sacrebleu's 13a tokenizer LRU cache, our
ROUGE pair cache) are cleared before every timed run; runs alternate, process CPU time is
measured (wall time too) and the minimum over repeats is compared.
The two paths' values are compared, so the benchmark also checks that ours computes the same
numbers. Usage: ``python bench/bench_metrics.py [--pairs 10000] [--repeats 3] [--seed 0]``;
``--smoke`` (200 pairs, 2 repeats, both orders) is what the test suite runs.
"""

from __future__ import annotations

import argparse
import re
import statistics
import string
import sys
import time
from pathlib import Path

import numpy as np

# Allow running as a script from the repository root without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rouge_score import rouge_scorer  # noqa: E402
from sacrebleu.metrics import BLEU  # noqa: E402
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a  # noqa: E402

from scoring.metrics import generation  # noqa: E402
from scoring.metrics.registry import score_outputs  # noqa: E402

METRICS = ("exact_match", "sentence_bleu", "rouge1", "rouge2", "rougeL", "corpus_bleu")

_COMMON_TEXT = (
    "the of and to in a is that for it as was with be by on not he i this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "model data results study users answer question system training evaluation people time "
    "first new used number between each because three during large small different however "
    "running jumped quickly reported measured increasing values performance human annotators"
)


def make_vocabulary(rng: np.random.Generator, size: int = 5000) -> list[str]:
    """Common words plus pseudo-words of 3-10 letters (deterministic given ``rng``)."""
    letters = np.array(list(string.ascii_lowercase))
    words = list(dict.fromkeys(_COMMON_TEXT.split()))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(letters, size=int(rng.integers(3, 11))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def make_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` (output, reference) pairs; ~5% identical, the rest edited copies."""
    rng = np.random.default_rng(seed)
    vocab = make_vocabulary(rng)
    # Zipf-like word frequencies, as in natural text.
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    vocab_arr = np.array(vocab, dtype=object)
    outputs: list[str] = []
    references: list[str] = []
    for _ in range(n):
        length = int(rng.integers(15, 41))
        ref = list(vocab_arr[rng.choice(len(vocab), size=length, p=weights)])
        if rng.random() < 0.05:
            out = list(ref)
        else:
            out = []
            for word in ref:
                r = rng.random()
                if r < 0.12:  # substitute
                    out.append(vocab_arr[rng.choice(len(vocab), p=weights)])
                elif r < 0.18:  # delete
                    continue
                elif r < 0.24:  # insert
                    out.extend((word, vocab_arr[rng.choice(len(vocab), p=weights)]))
                else:
                    out.append(word)
        ref_text = " ".join(ref).capitalize() + "."
        out_text = " ".join(out).capitalize() + "."
        references.append(ref_text)
        outputs.append(out_text)
    return outputs, references


_PUNCT = set(string.punctuation)


def squad_normalize(s: str) -> str:
    """The SQuAD v1.1 evaluation script's normalize_answer, verbatim in behaviour."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def run_direct(outputs: list[str], references: list[str]) -> dict[str, object]:
    """Call the libraries directly, the way a hand-written script would."""
    sent_bleu = BLEU(effective_order=True)
    corp_bleu = BLEU()
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    em, sb, r1, r2, rl = [], [], [], [], []
    for out, ref in zip(outputs, references, strict=True):
        em.append(1.0 if squad_normalize(out) == squad_normalize(ref) else 0.0)
        sb.append(sent_bleu.sentence_score(out, [ref]).score)
        scores = scorer.score(ref, out)
        r1.append(scores["rouge1"].fmeasure)
        r2.append(scores["rouge2"].fmeasure)
        rl.append(scores["rougeL"].fmeasure)
    corpus = corp_bleu.corpus_score(outputs, [references]).score
    return {
        "exact_match": em,
        "sentence_bleu": sb,
        "rouge1": r1,
        "rouge2": r2,
        "rougeL": rl,
        "corpus_bleu": corpus,
    }


def run_ours(outputs: list[str], references: list[str]) -> dict[str, object]:
    """One registry call computing the same metrics."""
    report = score_outputs("generation", outputs, references, metric_names=METRICS)
    result: dict[str, object] = {m: report.item_values(m) for m in METRICS[:-1]}
    result["corpus_bleu"] = report.corpus[0].values["bleu"]
    return result


def clear_caches() -> None:
    """Forget cached tokenisations so neither path profits from the previous run."""
    Tokenizer13a.__call__.cache_clear()
    generation._rouge_cached.cache_clear()
    generation._stem.cache_clear()


def check_same(ours: dict[str, object], direct: dict[str, object]) -> None:
    """Raise if the two paths disagree on any value."""
    for name in METRICS:
        a, b = ours[name], direct[name]
        if not np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=1e-9):
            raise SystemExit(f"MISMATCH in {name}: ours and direct values differ")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print timings and the ours/direct ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="200 pairs, 2 repeats, ~1 s")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pairs, args.repeats = 200, 2
    if args.pairs < 1 or args.repeats < 1:
        parser.error("--pairs and --repeats must be positive")

    t0 = time.perf_counter()
    outputs, references = make_pairs(args.pairs, args.seed)
    words = [len(r.split()) for r in references]
    print(
        f"generated {args.pairs} pairs in {time.perf_counter() - t0:.2f} s "
        f"(reference words: mean {statistics.mean(words):.1f}, min {min(words)}, max {max(words)})"
    )
    # Warm-up on a few pairs: imports, registry loading, scorer construction.
    run_ours(outputs[:20], references[:20])
    run_direct(outputs[:20], references[:20])

    # CPU time of this process is the primary measure: on a shared machine wall time mostly
    # measures the neighbours. The least-disturbed (minimum) run of each path is compared.
    cpu: dict[str, list[float]] = {"ours": [], "direct": []}
    wall: dict[str, list[float]] = {"ours": [], "direct": []}
    results: dict[str, dict[str, object]] = {}
    for rep in range(args.repeats):
        order = ("ours", "direct") if rep % 2 == 0 else ("direct", "ours")
        for path in order:
            clear_caches()
            fn = run_ours if path == "ours" else run_direct
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            results[path] = fn(outputs, references)
            cpu[path].append(time.process_time() - start_cpu)
            wall[path].append(time.perf_counter() - start_wall)
    check_same(results["ours"], results["direct"])

    print(f"metrics: {', '.join(METRICS)}")
    for label, path in (("ours   (score_outputs)", "ours"), ("direct (library loop) ", "direct")):
        best = min(cpu[path])
        print(
            f"{label}: CPU min {best:.3f} s ({1e6 * best / args.pairs:.1f} us/pair)  "
            f"CPU runs {[round(t, 3) for t in cpu[path]]}  "
            f"wall runs {[round(t, 3) for t in wall[path]]}"
        )
    print(f"corpus BLEU {results['ours']['corpus_bleu']:.2f} (identical in both paths)")
    per_run = [round(o / d, 3) for o, d in zip(cpu["ours"], cpu["direct"], strict=True)]
    print(f"ratio ours/direct per repeat (CPU): {per_run}")
    ratio = min(cpu["ours"]) / min(cpu["direct"])
    print(f"ratio ours/direct (min CPU): {ratio:.3f} (target <= 1.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
