"""Benchmark: Krippendorff's alpha with a 1,000-resample item bootstrap, ours vs naive.

Generates a seeded nominal study (default 100,000 items x 10 raters = 1M judgments, 20% missing,
4 categories; each rater copies the item's true category with probability 0.7, else picks one at
random), then times, in the same process:

* ours:  ``scoring.stats.agreement.krippendorff_alpha(..., n_resamples=1000)`` -- the point
         estimate plus the percentile CI from per-item coincidence contributions (one matrix
         product per chunk of resamples);
* naive: ``krippendorff.alpha`` on the full data, then on ``--naive-resamples`` resampled copies
         of the matrix (item columns drawn with replacement), extrapolated to 1,000 resamples.

The two point estimates are compared. Peak memory of our call is measured in a separate, untimed
run with ``tracemalloc`` (numpy reports its buffers to it); the process's peak RSS is printed too.
Usage: ``python bench/bench_agreement.py [--items 100000] [--raters 10] [--resamples 1000]``;
``--smoke`` (2,000 items x 5 raters, 100 resamples, about a second) runs every step and fails if
the two point estimates differ (the test suite runs it).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

# Allow running as a script from the repository root without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import krippendorff  # noqa: E402

from scoring.stats.agreement import krippendorff_alpha  # noqa: E402


def make_study(items: int, raters: int, categories: int, missing: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, categories, items)
    random_votes = rng.integers(0, categories, (raters, items))
    data = np.where(rng.random((raters, items)) < 0.7, truth, random_votes).astype(np.float64)
    data[rng.random(data.shape) < missing] = np.nan
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--raters", type=int, default=10)
    parser.add_argument("--categories", type=int, default=4)
    parser.add_argument("--missing", type=float, default=0.2)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--naive-resamples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny size, every step, ~1 s")
    args = parser.parse_args()
    if args.smoke:
        args.items, args.raters, args.resamples, args.naive_resamples = 2_000, 5, 100, 2

    data = make_study(args.items, args.raters, args.categories, args.missing, args.seed)
    judgments = int((~np.isnan(data)).sum())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"data: {args.items:,} items x {args.raters} raters, {judgments:,} judgments "
        f"({args.missing:.0%} missing), nominal, {args.categories} categories; "
        f"{cores} CPU cores available"
    )

    start = time.perf_counter()
    ours = krippendorff_alpha(
        data, level="nominal", n_resamples=args.resamples, rng=np.random.default_rng(args.seed)
    )
    ours_s = time.perf_counter() - start
    print(
        f"ours : alpha = {ours.estimate:.6f}, 95% CI [{ours.ci_low:.6f}, {ours.ci_high:.6f}] "
        f"({args.resamples} resamples) in {ours_s:.2f} s"
    )

    rng = np.random.default_rng(args.seed + 1)
    start = time.perf_counter()
    naive_point = float(krippendorff.alpha(data, level_of_measurement="nominal"))
    point_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.naive_resamples):
        columns = rng.integers(0, data.shape[1], data.shape[1])
        krippendorff.alpha(data[:, columns], level_of_measurement="nominal")
    per_resample = (time.perf_counter() - start) / args.naive_resamples
    naive_s = point_s + per_resample * args.resamples
    print(
        f"naive: alpha = {naive_point:.6f} in {point_s:.2f} s; {per_resample:.2f} s per resample "
        f"({args.naive_resamples} timed) -> {naive_s:.0f} s extrapolated to {args.resamples} "
        "resamples"
    )
    difference = abs(ours.estimate - naive_point)
    print(f"point estimates differ by {difference:.2e}")
    verdict = "met" if ours_s < 10 else "MISSED"
    print(f"speed-up: {naive_s / ours_s:.0f}x; target ours < 10 s: {verdict}")

    tracemalloc.start()
    krippendorff_alpha(
        data, level="nominal", n_resamples=args.resamples, rng=np.random.default_rng(args.seed)
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak memory of our call (tracemalloc): {peak / 2**20:.0f} MiB "
        f"(input matrix {data.nbytes / 2**20:.0f} MiB); process peak RSS (incl. naive runs): "
        f"{rss_mib:.0f} MiB"
    )
    if args.smoke and not difference < 1e-9:
        raise SystemExit(f"FAIL: ours and krippendorff.alpha differ by {difference:.2e}")


if __name__ == "__main__":
    main()
