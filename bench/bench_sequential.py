"""False-positive rate and power of the item-level group-sequential test (stats.sequential).

Simulates clustered A/B studies with ``bench/clustered_sim.py`` (an ordered-logit vote per rater
and item: item logits set the agreement, rater biases drawn in +-pairs, 10% ties) and takes a
look every ``--every`` (10) items up to ``max_items``, exactly as ``sequential_look`` would be
called by a study whose report is rebuilt after every completed item: a look is recorded at
each planned look point and the study stops at the first crossing. Cells: three shapes (300
items x 3 raters of 15, 100 x 5 of 10, 1,000 x 2 of 40) x agreement low / mid / high
(Krippendorff's alpha about 0.3 / 0.6 / 0.85) x rater bias 0 / 1 logit, under the null (true win
rate exactly 0.5), plus alternatives (win rate 0.55 / 0.60) for power.

Printed per cell, in the same run (the peer is the procedure the report used before):

* ``new``: the item-clustered score z against Lan-DeMets O'Brien-Fleming boundaries for the
  looks' information fractions (``n_items / max_items``), alpha 0.05 two-sided;
* ``old 5 looks``: the former vote-level sign test (``sequential_decision``) at 5 equally spaced
  looks, votes counted as independent;
* ``old rebuilt``: the former report logic (``scoring.reports.decision_section``: the look number
  derived from the vote count, ``max_looks`` 5) evaluated every ``--every`` items, as when the
  report is rebuilt, so alpha is spent again at each rebuild;
* for the alternatives: power, mean items at stop, and the fixed-sample clustered z test at
  ``max_items`` (same data) for comparison.

Target: the new test's false-positive rate <= 5.5% in every null cell (Monte-Carlo SE about
0.5 point with 2,000 studies), and pooled over the null cells. The z trajectories are computed
vectorised from per-item residual sums; for the first ``--check`` studies of each cell the real
``sequential_look`` loop (and ``sequential_decision`` for the peer) is run and must agree
exactly, so the fast path measures the shipped code.

Usage: ``python bench/bench_sequential.py`` (2,000 studies per cell, about 1-2 minutes) or
``--smoke`` (one shape, 200 studies, a few seconds).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtr

# Allow running as a script from the repository root without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clustered_sim import per_item_counts, simulate_study, symmetric_panel  # noqa: E402

from scoring.stats.sequential import (  # noqa: E402
    SequentialDesign,
    obrien_fleming_boundaries,
    planned_boundaries,
    sequential_decision,
    sequential_look,
)
from scoring.stats.votes import BASE, BOTH_BAD, TIE, TUNED  # noqa: E402

SHAPES = ((300, 3, 15), (100, 5, 10), (1000, 2, 40))  # items, raters per item, rater panel
AGREEMENTS = ("low", "mid", "high")
RATER_BIASES = (0.0, 1.0)
ALTERNATIVES = (0.55, 0.60)
TARGET = 0.055


def old_report_threshold(n_votes: int, planned_votes: int, max_looks: int = 5) -> float:
    """The boundary the former ``decision_section`` applied at ``n_votes`` (votes as looks)."""
    fraction = min(1.0, n_votes / planned_votes)
    look = max(1, min(max_looks, math.ceil(fraction * max_looks)))
    fractions = [min(1.0, (k + 1) / max_looks) for k in range(max_looks)]
    fractions[look - 1] = max(fraction, fractions[look - 2] + 1e-6 if look > 1 else fraction)
    fractions = sorted(max(f, 1e-6) for f in fractions)
    return obrien_fleming_boundaries(fractions)[look - 1], look, fractions


def wilson(rate: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson 95% interval of a Monte-Carlo proportion."""
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def trajectories(counts: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Item-clustered score z and vote sign-test z after the first ``n`` items, ``n`` in points."""
    votes = counts.sum(axis=1)
    scores = counts[:, TUNED] + 0.5 * (counts[:, TIE] + counts[:, BOTH_BAD])
    residual = scores - 0.5 * votes
    num = np.cumsum(residual)[points - 1]
    den = np.sqrt(np.cumsum(residual * residual)[points - 1])
    z_items = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    wins = np.cumsum(counts[:, TUNED] - counts[:, BASE])[points - 1]
    decisive = np.cumsum(counts[:, TUNED] + counts[:, BASE])[points - 1]
    z_votes = np.divide(wins, np.sqrt(decisive), out=np.zeros(len(points)), where=decisive > 0)
    return z_items, z_votes


def api_run(design: SequentialDesign, counts: np.ndarray) -> tuple[bool, list]:
    """The shipped loop: call ``sequential_look`` after every item, record what it returns."""
    looks: list = []
    for n in range(1, counts.shape[0] + 1):
        record = sequential_look(design, looks, counts=counts[:n])
        if record is not None:
            looks.append(record)
            if record.final:
                break
    return bool(looks and looks[-1].decision in ("tuned", "base")), looks


def run_cell(args, rng, shape, agreement, bias, win_rate):
    n_items, per_item, panel = shape
    design = SequentialDesign(
        max_items=n_items,
        look_every_items=args.every,
        min_items=args.min_items,
        spending=args.spending,
    )
    points = np.asarray(design.look_points)
    bounds = np.array([row["boundary"] for row in planned_boundaries(design)])
    planned_votes = n_items * per_item
    old_bounds = np.array([old_report_threshold(n * per_item, planned_votes)[0] for n in points])
    five = np.array([round(n_items * k / 5) for k in range(1, 6)])
    five_bounds = np.array(obrien_fleming_boundaries([0.2, 0.4, 0.6, 0.8, 1.0]))
    fixed = 1.959963984540054

    new = np.zeros(args.studies, dtype=bool)
    stop_items = np.zeros(args.studies)
    old5 = np.zeros(args.studies, dtype=bool)
    old_rebuilt = np.zeros(args.studies, dtype=bool)
    fixed_reject = np.zeros(args.studies, dtype=bool)
    for s in range(args.studies):
        items, _, codes = simulate_study(
            rng,
            n_items=n_items,
            raters_per_item=per_item,
            n_raters=panel,
            agreement=agreement,
            rater_bias=bias,
            tie_share=args.tie_share,
            win_rate=win_rate,
            # A panel mirrored about 0: its own win rate is 1/2 under the null, so a rejection
            # is a false positive of the item-level test (conditional on the panel).
            panel_biases=symmetric_panel(panel, bias),
        )
        counts = per_item_counts(items, codes, n_items)
        z_items, z_votes = trajectories(counts, points)
        crossed = np.flatnonzero(np.abs(z_items) >= bounds)
        new[s] = crossed.size > 0
        stop_items[s] = points[crossed[0]] if crossed.size else n_items
        fixed_reject[s] = abs(z_items[-1]) >= fixed
        old_rebuilt[s] = bool((np.abs(z_votes) >= old_bounds).any())
        _, z5 = trajectories(counts, five)
        old5[s] = bool((np.abs(z5) >= five_bounds).any())

        if s < args.check:
            decided, looks = api_run(design, counts)
            assert decided == new[s], (shape, agreement, bias, s)
            k = len(looks)
            assert np.allclose([r.z for r in looks], z_items[:k], atol=1e-9)
            assert np.allclose([r.boundary for r in looks], bounds[:k], atol=1e-9)
            for n, z, c in zip(points, z_votes, old_bounds, strict=True):
                tuned = int(counts[:n, TUNED].sum())
                base = int(counts[:n, BASE].sum())
                ties = int(counts[:n, [TIE, BOTH_BAD]].sum())
                _, look, fractions = old_report_threshold(n * per_item, planned_votes)
                old = sequential_decision(
                    tuned, base, ties, look=look, max_looks=5, information_fractions=fractions
                )
                assert old.decided == (abs(z) >= c) and abs(old.statistic - z) < 1e-9
    return {
        "new": new.mean(),
        "old5": old5.mean(),
        "old_rebuilt": old_rebuilt.mean(),
        "fixed": fixed_reject.mean(),
        "mean_items": stop_items.mean(),
        "looks": len(points),
        "n": args.studies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--min-items", type=int, default=10)
    parser.add_argument("--tie-share", type=float, default=0.1)
    parser.add_argument(
        "--spending", choices=("obrien_fleming", "pocock"), default="obrien_fleming"
    )
    parser.add_argument("--check", type=int, default=5, help="studies per cell run via the API")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="one shape, 200 studies")
    args = parser.parse_args()
    shapes = SHAPES
    if args.smoke:
        args.studies, shapes = min(args.studies, 200), SHAPES[:1]
    print(
        f"python bench/bench_sequential.py --studies {args.studies} --every {args.every} "
        f"--min-items {args.min_items} --tie-share {args.tie_share} --spending {args.spending} "
        f"--seed {args.seed}" + (" --smoke" if args.smoke else "")
    )
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    se = math.sqrt(0.05 * 0.95 / args.studies)
    print(f"\nNull (win rate 0.5): false-positive rate, alpha 0.05; MC SE ~{se:.1%} per cell")
    header = (
        f"{'items x raters':>15} {'agree':>5} {'bias':>4} {'looks':>5} {'new':>6} "
        f"{'95% CI':>13} {'old 5 looks':>11} {'old rebuilt':>11} {'old/new':>7}"
    )
    print(header)
    failures, pooled_hits, pooled_n, by_shape, cells, above = [], 0.0, 0, {}, 0, 0
    pooled_old_hits = 0.0
    for shape in shapes:
        for agreement in AGREEMENTS:
            for bias in RATER_BIASES:
                r = run_cell(args, rng, shape, agreement, bias, 0.5)
                ratio = r["old_rebuilt"] / r["new"] if r["new"] else float("inf")
                low, high = wilson(r["new"], r["n"])
                flag = "*" if r["new"] > TARGET else " "
                print(
                    f"{shape[0]:>9} x {shape[1]:<3} {agreement:>5} {bias:>4.0f} {r['looks']:>5} "
                    f"{r['new']:>5.1%}{flag} [{low:>4.1%}, {high:>4.1%}] "
                    f"{r['old5']:>11.1%} {r['old_rebuilt']:>11.1%} {ratio:>6.1f}x"
                )
                pooled_hits += r["new"] * r["n"]
                pooled_old_hits += r["old_rebuilt"] * r["n"]
                pooled_n += r["n"]
                by_shape[shape] = by_shape.get(shape, 0.0) + r["new"] / 6
                cells += 1
                above += r["new"] > TARGET
                if low > TARGET:
                    failures.append((shape, agreement, bias, round(float(r["new"]), 4)))
    pooled = pooled_hits / pooled_n
    pooled_se = math.sqrt(pooled * (1 - pooled) / pooled_n)
    print(f"pooled new FPR {pooled:.2%} +- {pooled_se:.2%} (SE) over {pooled_n} null studies")
    pooled_old = pooled_old_hits / pooled_n
    print(
        f"peer (old rebuilt) pooled FPR {pooled_old:.2%}: ratio old/new "
        f"{pooled_old / pooled if pooled else float('inf'):.1f}x"
    )
    for shape, rate in by_shape.items():
        shape_se = math.sqrt(rate * (1 - rate) / (6 * args.studies))
        print(f"  {shape[0]} x {shape[1]}: {rate:.2%} +- {shape_se:.2%}")
    # With a true rate of exactly 5%, a cell's estimate exceeds 5.5% with probability
    # P(Z > 0.5 / SE); printed so a '*' is read against what noise alone would give.
    expected = cells * float(1 - ndtr(0.005 / se))
    print(
        f"cells above {TARGET:.1%}: {above} of {cells} (about {expected:.1f} expected by "
        "Monte-Carlo noise if the true rate were 5.0%)"
    )

    print("\nAlternatives (300 items x 3 raters of 15, agreement mid, no rater bias): power")
    print(f"{'win rate':>8} {'sequential':>10} {'fixed n':>8} {'mean items at stop':>18}")
    for rate in ALTERNATIVES if not args.smoke else ALTERNATIVES[:1]:
        r = run_cell(args, rng, SHAPES[0], "mid", 0.0, rate)
        print(f"{rate:>8.2f} {r['new']:>10.1%} {r['fixed']:>8.1%} {r['mean_items']:>18.0f}")

    print(f"\n{time.perf_counter() - start:.1f} s")
    if args.smoke:
        # 200 studies per cell cannot resolve 0.5 point; the smoke run checks that the shipped
        # API agrees with the fast path and that the pooled rate is not clearly above target.
        if pooled > TARGET + 2 * pooled_se:
            print(f"FAIL: pooled false-positive rate {pooled:.2%} above {TARGET:.1%} + 2 SE")
            raise SystemExit(1)
        print("OK (smoke): API agrees with the fast path; pooled rate within target + 2 SE")
        return
    # A decision on the rate, not on Monte-Carlo noise: a cell fails when its whole 95% CI is
    # above target; the pooled and per-shape rates (SE 0.1-0.2 point) must be below it.
    if failures:
        print(f"FAIL: false-positive rate significantly above {TARGET:.1%} in {failures}")
        raise SystemExit(1)
    worst = max([pooled, *by_shape.values()])
    if worst > TARGET:
        print(f"FAIL: pooled or per-shape false-positive rate {worst:.2%} above {TARGET:.1%}")
        raise SystemExit(1)
    print(f"OK: pooled and per-shape rates <= {TARGET:.1%}, no cell significantly above it")


if __name__ == "__main__":
    main()
