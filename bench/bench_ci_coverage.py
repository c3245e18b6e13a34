"""Calibration simulation of the item-clustered win-rate inference (``scoring.stats``).

Studies come from ``bench/clustered_sim.py`` (items with a logit-normal latent preference, raters
with a logit bias, a Rao-Kupper tie zone; under the null the population win rate is exactly 1/2).
Each grid cell (items x raters per item x agreement x rater bias x tie share x true win rate)
runs ``--studies`` studies in each of two regimes:

* fixed panel: every study is judged by the same ``--raters`` raters (biases at the normal
  quantiles, so the panel is symmetric). Estimand of the item-level interval: this panel's win
  rate over the item population (:func:`clustered_sim.panel_win_rate`; exactly 1/2 under the
  null, so the p-value's type I error is measured on the same studies).
* random panel: every study draws a new panel. Estimand of the panel interval: the population
  win rate (over items and raters).

Measured per cell, with the vote-counting method of the old report as the peer in the same run
(Wilson interval on votes with the tie-variance correction, exact sign test on votes):

* ``item cov``: coverage of the item-level interval ``WinRateInference.ci`` (target 95% +- 1.5);
* ``type I``: share of null studies with ``p_value`` (the mid-p) below 0.05 (target 5% +- 1);
* ``attain``: the exact size of that test given each study's item magnitudes, averaged over the
  studies (``SignFlipTest.mid_p_size``). The simulation satisfies the sharp null (items are
  independent and each item's tuned-minus-base votes are symmetric about 0), so this is the
  type I error a perfect simulation would show: ``type I`` differs from it by Monte-Carlo noise
  only, and where ``attain`` itself is off 5% the cause is discreteness, not error (with one
  vote per item and no ties it is the sign test's size on ``items`` votes by arithmetic);
* ``panel cov``: coverage of ``panel_ci`` with random panels (target 95% +- 2);
* ``item cov (rand)``: the item interval with random panels, to show what the panel interval is
  for (it under-covers the population win rate when raters differ);
* ``deff``: mean design effect.

Monte-Carlo noise is separated from miscalibration in two ways. (1) Every cell with a target
outside its band in the first pass is rerun on ``--confirm-studies`` (20,000) new studies,
seeded apart from the first pass, and counts as a miss only if the rerun is outside the band
too; the rerun's rate is printed with its Monte-Carlo 95% interval. With 2,000 studies the
standard error of a 5% rate is 0.49 points, so a perfectly calibrated test lands outside 5 +- 1
in about 4% of cells by chance; with 20,000 it is 0.15 points. (2) The type I errors of all
null cells are compared with their attainable sizes by a chi-square statistic.

Then the gate: one borderline study judged 50 times by ``win_rate_gate`` (votes shuffled with 50
seeds) and by the old bootstrap criterion (50 bootstrap seeds); the number of distinct verdicts
is printed (the gate must give one).

Usage::

    python bench/bench_ci_coverage.py --smoke      # 8 cells, 150 studies (600 to confirm), < 20 s
    python bench/bench_ci_coverage.py              # 234 cells, 2,000 studies per cell, reruns
    python bench/bench_ci_coverage.py --items 30 100 --per-item 3 --studies 500   # a subset

Cost: the heaviest cell (1,000 items x 5 votes) takes about 6 s for 2,000 studies in both
regimes on an idle core; the full grid takes 4 to 8 minutes for the first pass and a few
more for the reruns (docs/benchmarks.md gives the measured time).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import binom, norm
from scipy.stats import chi2 as chi2_dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clustered_sim import (  # noqa: E402
    counts_from_codes,
    measured_alpha,
    panel_win_rate,
    simulate_studies,
    simulate_study,
    symmetric_panel,
    vote_model,
)

from scoring.stats.clustered import moments_from_totals, sign_flip_test  # noqa: E402
from scoring.stats.winrate import wilson_interval, win_rate  # noqa: E402
from scoring.stats.winrate_inference import (  # noqa: E402
    clustered_intervals,
    extend_unless_rejected,
    panel_intervals,
    win_rate_gate,
)

CONFIDENCE = 0.95
# The null grid (216 cells) and, for coverage away from 1/2, a smaller alternative grid (18 cells).
FULL = (
    {
        "items": (30, 100, 300, 1000),
        "per_item": (1, 3, 5),
        "agreement": ("low", "mid", "high"),
        "bias": (0.0, 0.5, 1.0),
        "ties": (0.0, 0.3),
        "win": (0.5,),
    },
    {
        "items": (30, 300),
        "per_item": (1, 3, 5),
        "agreement": ("low", "mid", "high"),
        "bias": (0.5,),
        "ties": (0.3,),
        "win": (0.65,),
    },
)
SMOKE = (
    {
        "items": (30, 100),
        "per_item": (1, 3),
        "agreement": ("mid",),
        "bias": (0.0, 1.0),
        "ties": (0.2,),
        "win": (0.5,),
    },
)
TARGET_COVERAGE, COVERAGE_TOL, PANEL_TOL, SIZE_TOL = 0.95, 0.015, 0.02, 0.01


@dataclass(frozen=True)
class Cell:
    items: int
    per_item: int
    agreement: str
    bias: float
    ties: float
    win: float


def _item_arrays(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    counts = counts_from_codes(codes)
    tuned, base, tie = counts[..., 1], counts[..., 0], counts[..., 2]
    return tuned, base, tie, tuned + base + tie


def new_item_intervals(
    codes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(low, high, p, deff, attainable)`` of ``win_rate_inference`` for ``(S, G, k)`` studies:
    ``p`` is the reported p (mid-p or exact, as the report chooses), ``attainable`` the exact
    size of its test given each study's item magnitudes (its type I error under the sharp null,
    which this simulation satisfies: items are independent and symmetric about 0)."""
    tuned, base, tie, votes = _item_arrays(codes)
    result = clustered_intervals(tuned + 0.5 * tie, votes, tie, confidence=CONFIDENCE)
    tests = [sign_flip_test(row, level=1 - CONFIDENCE) for row in tuned - base]
    p_values = np.array([t.mid_p_value for t in tests])
    attainable = np.array([t.mid_p_size for t in tests])
    low, high, _ = extend_unless_rejected(result.low, result.high, p_values, CONFIDENCE)
    return low, high, p_values, result.design_effect, attainable


def new_panel_intervals(
    codes: np.ndarray,
    raters: np.ndarray,
    n_raters: int,
    item_low: np.ndarray,
    item_high: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    tuned, _, tie, votes = _item_arrays(codes)
    item = moments_from_totals(tuned + 0.5 * tie, votes, tie)
    n_studies = codes.shape[0]
    flat = (np.arange(n_studies)[:, None, None] * n_raters + raters).ravel()
    size = n_studies * n_raters
    score = np.array([0.0, 1.0, 0.5])[codes].ravel()
    is_tie = (codes == 2).ravel().astype(np.float64)

    def per_rater(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(flat, weights, size).reshape(n_studies, n_raters)

    rater = moments_from_totals(per_rater(score), per_rater(None), per_rater(is_tie))
    low, high = panel_intervals(item, rater, confidence=CONFIDENCE)
    return low, high


def old_vote_counting(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The old report: Wilson on votes (tie-variance corrected) and the sign test on votes."""
    flat = codes.reshape(codes.shape[0], -1)
    tuned = (flat == 1).sum(axis=1).astype(np.float64)
    base = (flat == 0).sum(axis=1).astype(np.float64)
    ties = (flat == 2).sum(axis=1).astype(np.float64)
    n = tuned + base + ties
    p = (tuned + 0.5 * ties) / n
    s2 = (tuned * (1 - p) ** 2 + base * p**2 + ties * (0.5 - p) ** 2) / n
    bern = p * (1 - p)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where((s2 > 0) & (bern > 0), n * bern / s2, n)
    z = norm.ppf(0.5 + CONFIDENCE / 2)
    denom = 1 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denom
    half = z * np.sqrt(bern / n_eff + z * z / (4 * n_eff**2)) / denom
    decisive = tuned + base
    sign_p = np.minimum(1.0, 2 * binom.cdf(np.minimum(tuned, base), decisive, 0.5))
    sign_p = np.where(decisive > 0, sign_p, 1.0)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1), sign_p


REGIMES = ("fixed", "random")


def run_cell(
    rng: np.random.Generator,
    cell: Cell,
    studies: int,
    n_raters: int,
    regimes: tuple[str, ...] = REGIMES,
) -> dict:
    """Rates over ``studies`` studies of one cell; keys of a regime not run are ``nan``.

    ``fixed``: ``item``, ``old`` (coverage), ``size``, ``old_size`` (type I), ``attainable``
    (the mean exact size of the reported test given each study's items), ``deff``;
    ``random``: ``panel``, ``item_random`` (coverage of the population win rate)."""
    model = vote_model(cell.agreement, cell.bias, cell.ties, cell.win)
    panel = symmetric_panel(n_raters, cell.bias)
    target_fixed = panel_win_rate(model, panel)
    chunk = max(1, 3_000_000 // (cell.items * max(n_raters, cell.per_item)))
    fixed_keys = ("item", "old", "size", "old_size", "attainable", "deff")
    random_keys = ("panel", "item_random")
    sums = dict.fromkeys(fixed_keys + random_keys, 0.0)
    common = {
        "n_items": cell.items,
        "raters_per_item": cell.per_item,
        "n_raters": n_raters,
        "agreement": cell.agreement,
        "rater_bias": cell.bias,
        "tie_share": cell.ties,
        "win_rate": cell.win,
    }
    done = 0
    while done < studies:
        rows = min(chunk, studies - done)
        if "fixed" in regimes:
            codes, _ = simulate_studies(rng, rows, panel_biases=panel, **common)
            low, high, p_values, deff, attainable = new_item_intervals(codes)
            old_low, old_high, old_p = old_vote_counting(codes)
            sums["item"] += ((low <= target_fixed) & (target_fixed <= high)).sum()
            sums["old"] += ((old_low <= target_fixed) & (target_fixed <= old_high)).sum()
            sums["size"] += (p_values < 1 - CONFIDENCE).sum()
            sums["old_size"] += (old_p < 1 - CONFIDENCE).sum()
            sums["attainable"] += attainable.sum()
            sums["deff"] += deff.sum()
        if "random" in regimes:
            codes, raters = simulate_studies(rng, rows, **common)
            low, high, _, _, _ = new_item_intervals(codes)
            panel_low, panel_high = new_panel_intervals(codes, raters, n_raters, low, high)
            sums["panel"] += ((panel_low <= cell.win) & (cell.win <= panel_high)).sum()
            sums["item_random"] += ((low <= cell.win) & (cell.win <= high)).sum()
        done += rows
    result = {key: value / studies for key, value in sums.items()}
    for regime, keys in (("fixed", fixed_keys), ("random", random_keys)):
        if regime not in regimes:
            result.update(dict.fromkeys(keys, float("nan")))
    return result


@dataclass(frozen=True)
class Target:
    """One calibration target: the rate ``key`` of ``regime`` within ``centre +- tolerance``."""

    name: str
    key: str
    regime: str
    centre: float
    tolerance: float
    null_only: bool

    def applies(self, cell: Cell) -> bool:
        return cell.win == 0.5 or not self.null_only

    def within(self, rate: float) -> bool:
        return abs(rate - self.centre) <= self.tolerance


TARGETS = (
    Target("item coverage", "item", "fixed", TARGET_COVERAGE, COVERAGE_TOL, False),
    Target("panel coverage", "panel", "random", TARGET_COVERAGE, PANEL_TOL, False),
    Target("type I error", "size", "fixed", 1 - CONFIDENCE, SIZE_TOL, True),
)


def mc_interval(rate: float, studies: int) -> tuple[float, float]:
    """Monte-Carlo 95% interval of a rate measured on ``studies`` independent studies."""
    return wilson_interval(rate * studies, studies, confidence=0.95)


def confirm(
    seed: int, rows: list[tuple[Cell, dict]], studies: int, n_raters: int
) -> dict[tuple[int, str], dict]:
    """Rerun every cell with a target outside its band on ``studies`` new studies (seeded apart
    from the first pass, per cell); only the regimes the missed targets need are run.

    Returns ``{(cell index, target name): confirmation run}``."""
    confirmed: dict[tuple[int, str], dict] = {}
    for index, (cell, result) in enumerate(rows):
        missed = [t for t in TARGETS if t.applies(cell) and not t.within(result[t.key])]
        if not missed:
            continue
        regimes = tuple(r for r in REGIMES if any(t.regime == r for t in missed))
        rerun = run_cell(np.random.default_rng([seed, 1, index]), cell, studies, n_raters, regimes)
        for target in missed:
            confirmed[(index, target.name)] = rerun
    return confirmed


def gate_stability(seed: int) -> tuple[int, int, float]:
    """Distinct verdicts over 50 seeds: (new gate, old bootstrap criterion, old bound spread)."""
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(40):  # a borderline study: the old bootstrap bound near 1/2
        items, raters, codes = simulate_study(
            rng,
            n_items=200,
            raters_per_item=3,
            n_raters=10,
            agreement="mid",
            rater_bias=0.5,
            tie_share=0.2,
            win_rate=0.56,
        )
        old = win_rate(codes, item_ids=list(items), n_resamples=1000, rng=np.random.default_rng(0))
        gap = abs(old.bootstrap_low - 0.5)
        if best is None or gap < best[0]:
            best = (gap, items, raters, codes)
    _, items, raters, codes = best
    new_verdicts, old_verdicts, old_bounds = set(), set(), []
    for s in range(50):
        order = np.random.default_rng(s).permutation(codes.size)
        gate = win_rate_gate(item_index=items[order], codes=codes[order])
        new_verdicts.add((gate.status, gate.bound))
        old = win_rate(
            codes, item_ids=list(items), n_resamples=1000, rng=np.random.default_rng(1000 + s)
        )
        old_verdicts.add(old.bootstrap_low > 0.5)
        old_bounds.append(old.bootstrap_low)
    return len(new_verdicts), len(old_verdicts), float(np.ptp(old_bounds))


def _mark(value: float, target: float, tol: float) -> str:
    return " " if abs(value - target) <= tol else "*"


def _cell_text(cell: Cell) -> str:
    return (
        f"{cell.items:5d} {cell.per_item:2d} {cell.agreement:>5s} {cell.bias:5.1f} "
        f"{cell.ties:5.2f} {cell.win:5.2f}"
    )


def _print_row(cell: Cell, result: dict) -> None:
    null = cell.win == 0.5
    size = f"{result['size']:6.1%}{_mark(result['size'], 0.05, SIZE_TOL)}" if null else "    - "
    attainable = f"{result['attainable']:6.1%}" if null else "    - "
    old_size = f"{result['old_size']:6.1%}" if null else "    - "
    print(
        f"{_cell_text(cell)} | "
        f"{result['item']:7.1%}{_mark(result['item'], TARGET_COVERAGE, COVERAGE_TOL)}"
        f"{result['old']:7.1%}  | {size} {attainable}  {old_size}    | "
        f"{result['panel']:7.1%}{_mark(result['panel'], TARGET_COVERAGE, PANEL_TOL)}"
        f"   {result['item_random']:7.1%}        | {result['deff']:5.2f}",
        flush=True,
    )


def _print_confirmations(
    rows: list[tuple[Cell, dict]], confirmed: dict[tuple[int, str], dict], studies: int
) -> None:
    print(
        f"\nconfirmation: each cell outside a band rerun on {studies} new studies "
        "(a miss only if this run is outside the band too)"
    )
    print(
        "items  k  agree  bias  ties   win | target          | first pass | confirmation"
        " [MC 95%]      | attainable | verdict"
    )
    targets = {t.name: t for t in TARGETS}
    for (index, name), rerun in confirmed.items():
        cell, first = rows[index]
        target = targets[name]
        rate = rerun[target.key]
        low, high = mc_interval(rate, studies)
        attainable = rerun["attainable"] if target.key == "size" else float("nan")
        if target.within(rate):
            verdict = "in band: the first pass was Monte-Carlo noise"
        elif target.key == "size" and not target.within(attainable):
            verdict = "outside: discreteness (the attainable size is outside the band)"
        else:
            verdict = "OUTSIDE"
        attainable_text = f"{attainable:6.2%}" if target.key == "size" else "     -"
        print(
            f"{_cell_text(cell)} | {name:15s} | {first[target.key]:9.1%}  | {rate:7.2%} "
            f"[{low:6.2%}, {high:6.2%}] |     {attainable_text} | {verdict}"
        )


def _summarise(
    rows: list[tuple[Cell, dict]],
    confirmed: dict[tuple[int, str], dict],
    studies: int,
    confirm_studies: int,
) -> None:
    for target in TARGETS:
        cells = [(i, c, r) for i, (c, r) in enumerate(rows) if target.applies(c)]
        if not cells:
            continue
        rates = np.array([r[target.key] for _, _, r in cells])
        first = [i for i, _, r in cells if target.within(r[target.key])]
        misses = [
            i
            for i, _, r in cells
            if not target.within(r[target.key])
            and (
                (i, target.name) not in confirmed
                or not target.within(confirmed[(i, target.name)][target.key])
            )
        ]
        multi = [i for i, c, _ in cells if c.per_item > 1]
        multi_text = ""
        if target.key == "size":
            multi_first = len(set(first) & set(multi))
            multi_confirmed = len(multi) - len(set(misses) & set(multi))
            multi_text = f" (k > 1: {multi_first}/{len(multi)} and {multi_confirmed}/{len(multi)})"
        print(
            f"{target.name}: mean {rates.mean():.1%}, range {rates.min():.1%} to "
            f"{rates.max():.1%}; within {target.centre:.0%} +- {target.tolerance * 100:g}: "
            f"first pass {len(first)}/{len(cells)}, confirmed {len(cells) - len(misses)}/"
            f"{len(cells)}{multi_text}"
        )
        if target.key == "size" and misses:
            discrete = sum(
                not target.within(confirmed[(i, target.name)]["attainable"]) for i in misses
            )
            print(
                f"  confirmed misses: {len(misses)}, of which {discrete} where the attainable "
                "size of the test is itself outside the band (discreteness, not error)"
            )
    null = [r for c, r in rows if c.win == 0.5]
    if null:
        measured = np.array([r["size"] for r in null])
        attainable = np.array([r["attainable"] for r in null])
        z = (measured - attainable) / np.sqrt(attainable * (1 - attainable) / studies)
        chi2 = float((z * z).sum())
        print(
            f"type I error against the attainable size (the test's exact size given each "
            f"study's items): chi-square {chi2:.1f} on {z.size} df (p = "
            f"{chi2_dist.sf(chi2, z.size):.2f}), largest |z| {np.abs(z).max():.2f}; "
            f"attainable size mean {attainable.mean():.2%}, range {attainable.min():.2%} to "
            f"{attainable.max():.2%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny grid, < 20 s")
    parser.add_argument("--studies", type=int, default=None, help="per cell (2,000 full)")
    parser.add_argument(
        "--confirm-studies",
        type=int,
        default=None,
        help="studies in the rerun of a cell outside a band (20,000 full; 0: no reruns)",
    )
    parser.add_argument("--raters", type=int, default=10, help="panel size")
    parser.add_argument("--seed", type=int, default=0)
    for name in ("items", "per_item", "agreement", "bias", "ties", "win"):
        kind = {"items": int, "per_item": int, "agreement": str}.get(name, float)
        parser.add_argument(f"--{name.replace('_', '-')}", nargs="+", type=kind, default=None)
    args = parser.parse_args()
    grids = [dict(grid) for grid in (SMOKE if args.smoke else FULL)]
    names = tuple(grids[0])
    if any(getattr(args, name) is not None for name in names):
        # A subset on the command line: one grid, the first grid's values where not given.
        grids = [{n: tuple(getattr(args, n) or grids[0][n]) for n in names}]
    studies = args.studies or (150 if args.smoke else 2000)
    confirm_studies = args.confirm_studies
    if confirm_studies is None:
        confirm_studies = 600 if args.smoke else 20_000
    rng = np.random.default_rng(args.seed)
    cells = [Cell(*values) for grid in grids for values in itertools.product(*grid.values())]
    print(f"{len(cells)} cells x {studies} studies x 2 regimes, panel of {args.raters} raters")
    header = (
        "items  k  agree  bias  ties   win | item cov  old cov | type I attain  old type I |"
        " panel cov  item cov (rand) | deff"
    )
    print(header)
    start = time.perf_counter()
    rows = []
    for cell in cells:
        result = run_cell(rng, cell, studies, args.raters)
        rows.append((cell, result))
        _print_row(cell, result)
    first_pass = time.perf_counter() - start
    confirmed = {}
    if confirm_studies:
        confirmed = confirm(args.seed, rows, confirm_studies, args.raters)
        _print_confirmations(rows, confirmed, confirm_studies)
    elapsed = time.perf_counter() - start
    print(
        f"\n{elapsed:.1f} s ({first_pass:.1f} s first pass, {elapsed - first_pass:.1f} s "
        f"confirming {len({i for i, _ in confirmed})} cells); * marks a first-pass rate outside "
        "its band; 'attain' is the exact size of the reported test given each study's items, "
        "averaged over the studies (the type I error a perfect simulation would show)"
    )
    _summarise(rows, confirmed, studies, confirm_studies)
    fixed = [r for _, r in rows]
    item = np.array([r["item"] for r in fixed])
    old = np.array([r["old"] for r in fixed])
    null_rows = [r for c, r in rows if c.win == 0.5]
    size = np.array([r["size"] for r in null_rows])
    old_size = np.array([r["old_size"] for r in null_rows])
    if size.size:
        print(
            f"peer (vote counting, same studies): type I error mean {old_size.mean():.1%}; "
            f"ratio old/new {old_size.mean() / max(size.mean(), 1e-9):.2f}x"
        )
    miss_new, miss_old = 1 - item.mean(), 1 - old.mean()
    print(
        f"peer non-coverage {miss_old:.1%} vs item-clustered {miss_new:.1%}: "
        f"ratio old/new {miss_old / max(miss_new, 1e-9):.2f}x"
    )
    new_distinct, old_distinct, spread = gate_stability(args.seed)
    print(
        f"gate over 50 seeds on a borderline study: win_rate_gate {new_distinct} distinct "
        f"verdict(s); old bootstrap criterion {old_distinct} distinct verdict(s) "
        f"(its bound moved by {spread:.4f})"
    )
    if not args.smoke:
        alphas = {a: measured_alpha(rng, a) for a in sorted({c.agreement for c in cells})}
        print(
            "measured Krippendorff nominal alpha (3 raters, tie share 0.2): "
            + ", ".join(f"{a} {v:.2f}" for a, v in alphas.items())
        )


if __name__ == "__main__":
    main()
