"""The research report: agreement, win rate, raters, judge-vs-human and metric-vs-human
reconciliation, disagreements and the sequential decision, as one JSON-serialisable dict.

Data are read with a fixed number of queries (bulk reads and database aggregation, never
per-row queries): the large ones (votes, verdicts, scores, output lengths) as numpy columns
(`scoring.columns`), those that do not depend on the votes on a second connection while the
votes are read (`Prefetch`). The statistics come from the pure `scoring.stats` and
`scoring.metrics` modules, on arrays: a million votes are never a million Python objects. The
same dict feeds the API, the HTML report, CSV and the sign-off hash, so it is deterministic
for the same data (fixed bootstrap seed, sorted keys).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.db.models import Count, Q
from django.utils import timezone

import evalplatform
from annotations.models import Adjudication, Item, Judgment, Output, Study, System
from scoring import selectors
from scoring.models import JudgeVerdict
from scoring.stats.arrays import first_seen_integers, has_duplicates, sorted_unique

logger = logging.getLogger(__name__)

# 2: item-clustered win-rate inference, length-adjusted (renamed), pairwise judge agreement,
# sequential decision from recorded looks, one verdict. 3: a rater's position bias is named by
# the slot raters saw (`response_1_rate`, `response_1_p_value`; were `left_*`).
REPORT_SCHEMA_VERSION = 3
CODES = {"base": 0, "tuned": 1, "tie": 2, "both_bad": 3}
NAMES = {v: k for k, v in CODES.items()}
ALPHA_TENTATIVE = 0.667
ALPHA_RELIABLE = 0.800
MAX_REPORTED_DISAGREEMENTS = 5_000
ITEM_TEXT_CHUNK = 500  # items whose texts are read in one query


@dataclass(frozen=True)
class ReportOptions:
    exclude_flagged_raters: bool = False
    n_resamples: int = 1_000
    seed: int = selectors.REPORT_SEED


def finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def interval(low: float | None, high: float | None) -> list[float] | None:
    low, high = finite(low), finite(high)
    return [low, high] if low is not None and high is not None else None


@dataclass(frozen=True)
class VoteRows:
    """Votes as columns, in judgment order: item id, rater id, preference code, code of the
    system shown on the left (-1: unknown) and seconds spent (nan: unknown); `names` maps each
    rater id to its username. Arrays rather than lists: a million votes as Python objects cost
    hundreds of MiB and seconds to walk."""

    item_ids: np.ndarray
    rater_ids: np.ndarray
    codes: np.ndarray
    left: np.ndarray
    seconds: np.ndarray
    names: dict[int, str]

    def __len__(self) -> int:
        return int(self.codes.size)

    def without_rater_details(self) -> VoteRows:
        """The same votes without the left slot and the seconds (only the rater statistics
        read them; 9 MiB on a million votes)."""
        empty = np.zeros(0)
        return VoteRows(self.item_ids, self.rater_ids, self.codes, empty, empty, self.names)

    def take(self, keep: np.ndarray) -> VoteRows:
        """The votes selected by `keep` (a mask or indices), in the same order."""
        detailed = self.left.size == self.codes.size  # see without_rater_details
        return VoteRows(
            self.item_ids[keep],
            self.rater_ids[keep],
            self.codes[keep],
            self.left[keep] if detailed else self.left,
            self.seconds[keep] if detailed else self.seconds,
            self.names,
        )


def vote_table(study: Study) -> dict[str, np.ndarray]:
    """The study's votes on items that are not excluded, as columns (`id`, `item_id`,
    `rater_id`, `code`, `left`, `time_ms` (-1: unknown), `is_gold`), in no particular order:
    one statement, no Python object per vote.

    The database groups the votes by rater, preference, left system and gold flag (a few
    hundred groups), so those come once per group and only the judgment id, item id and time
    per vote (`scoring.columns.numeric_columns`); a preference or system that is not a code
    is -1 (the preference is refused by `fetch_votes`)."""
    from scoring.columns import numeric_columns

    judgment, item = Judgment._meta.db_table, Item._meta.db_table
    source = (  # table names from model metadata; the study is a parameter
        f"FROM {judgment} j JOIN {item} i ON i.id = j.item_id "
        "WHERE i.study_id = %s AND NOT i.excluded"
    )
    groups = numeric_columns(
        source,
        [study.pk],
        {
            "id": ("j.id", "int8"),
            "item_id": ("j.item_id", "int8"),
            "time_ms": ("coalesce(j.time_ms, -1)", "int4"),
        },
        group_by=("j.rater_id", "j.preferred", "j.left_system", "i.is_gold"),
    )
    sizes = [table["id"].size for _, table in groups]

    def spread(values: list, dtype) -> np.ndarray:
        return np.repeat(np.asarray(values, dtype=dtype), sizes)

    keys = [key for key, _ in groups]
    columns = {
        name: np.concatenate([table.pop(name) for _, table in groups] or [np.zeros(0, dtype)])
        for name, dtype in (("id", np.int64), ("item_id", np.int64), ("time_ms", np.int32))
    }
    return columns | {
        "rater_id": spread([rater for rater, *_ in keys], np.int32),
        "code": spread([CODES.get(p, -1) for _, p, _, _ in keys], np.int8),
        "left": spread([CODES.get(left, -1) for _, _, left, _ in keys], np.int8),
        "is_gold": spread([bool(gold) for *_, gold in keys], np.bool_),
    }


def fetch_votes(study: Study) -> tuple[VoteRows, VoteRows]:
    """The study's votes on rated items and on gold items (items not excluded), each in
    judgment order (sorted here: the database's join is faster unordered). Compact columns
    (int8 codes, int32 raters), gathered one at a time, so a million votes never hold more
    than a column's worth of copies."""
    table = vote_table(study)
    if (table["code"] < 0).any():
        raise ValueError("a judgment has a preference that is not a preference code")
    order = np.argsort(table.pop("id"), kind="stable")
    gold = table.pop("is_gold")[order]
    rows = (order[~gold], order[gold])  # positions of each set's votes, in judgment order
    del order, gold

    def split(name: str, dtype) -> tuple[np.ndarray, np.ndarray]:
        column = table.pop(name)
        return tuple(column[r].astype(dtype, copy=False) for r in rows)

    item_ids = split("item_id", np.int64)
    rater_ids = split("rater_id", np.int32)
    codes = split("code", np.int8)
    left = split("left", np.int8)
    time_ms = split("time_ms", np.int64)
    seconds = tuple(np.where(ms < 0, np.nan, ms / 1000.0) for ms in time_ms)
    del time_ms
    # Usernames in a second query: one per rater, not one per vote.
    ids = sorted_unique(np.concatenate(rater_ids)).tolist()
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    votes, gold_votes = (
        VoteRows(item_ids[k], rater_ids[k], codes[k], left[k], seconds[k], names) for k in (0, 1)
    )
    return votes, gold_votes


def first_seen_index(values: np.ndarray) -> tuple[int, np.ndarray]:
    """Distinct values of an integer array in first-seen order (as
    `scoring.stats.votes.index_items` orders them): their number and each value's index."""
    distinct, index = first_seen_integers(np.asarray(values, dtype=np.int64))
    return distinct.size, index


def first_seen_item_index(item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ids in first-seen order and each vote's index into them."""
    return first_seen_integers(np.asarray(item_ids, dtype=np.int64))


def rater_thresholds(study: Study):
    from scoring.stats.raters import RaterThresholds

    config = (study.settings or {}).get("rater_thresholds", {})
    min_seconds = config.get("min_median_seconds")
    if min_seconds is None and study.min_time_ms:
        min_seconds = study.min_time_ms / 1000.0
    return RaterThresholds(
        min_votes_to_judge=int(config.get("min_votes_to_judge", 10)),
        min_median_seconds=min_seconds,
        position_bias_p_value=config.get("position_bias_p_value", 0.01),
        min_majority_agreement=config.get("min_majority_agreement", 0.5),
        min_gold_accuracy=config.get("min_gold_accuracy", 0.6),
    )


def rater_rows(study: Study, votes: VoteRows, gold_votes: VoteRows) -> list[dict[str, Any]]:
    from scoring.stats.raters import rater_reports_from_columns

    gold_answers = {
        item_id: CODES[answer]
        for item_id, answer in Item.objects.filter(study=study, is_gold=True).values_list(
            "id", "gold_preference"
        )
    }
    both = (votes, gold_votes)
    reports = rater_reports_from_columns(
        raters=np.concatenate([rows.rater_ids for rows in both]),
        items=np.concatenate([rows.item_ids for rows in both]),
        codes=np.concatenate([rows.codes for rows in both]),
        left=np.concatenate([rows.left for rows in both]),
        seconds=np.concatenate([rows.seconds for rows in both]),
        gold=gold_answers,
        thresholds=rater_thresholds(study),
    )
    names = votes.names | gold_votes.names
    return [
        {
            "rater": name,
            "votes": r.n_votes,
            "median_seconds": finite(r.median_seconds),
            # Position bias, named by the slot raters saw first ("Response 1").
            "response_1_rate": finite(r.left_rate),
            "response_1_p_value": finite(r.left_p_value),
            "loo_agreement": finite(r.majority_agreement),
            "gold_accuracy": finite(r.gold_accuracy),
            "gold_votes": r.n_gold,
            "flags": list(r.flags),
            "flagged": bool(r.flags),
        }
        for name, r in sorted(((str(names[r.rater]), r) for r in reports), key=lambda p: p[0])
    ]


def keep_raters(votes: VoteRows, excluded: set[str]) -> VoteRows:
    if not excluded:
        return votes
    dropped = [rater_id for rater_id, name in votes.names.items() if name in excluded]
    return votes.take(~np.isin(votes.rater_ids, dropped))


def reliability_matrix(votes: VoteRows) -> tuple[np.ndarray, np.ndarray]:
    """The ``(raters, items)`` matrix of `scoring.stats.votes.votes_to_matrix` (raters and items
    in first-seen order, ``nan`` = no vote, both-bad as tie), built from the columns directly
    rather than from one `Vote` object per vote, and the item id of each column.

    Raises:
        ValueError: a rater voted twice on the same item.
    """
    n_raters, rater_index = first_seen_index(votes.rater_ids)
    items, item_index = first_seen_item_index(votes.item_ids)
    n_items = items.size
    codes = votes.codes.copy()
    codes[codes == 3] = 2  # both-bad is a tie for agreement
    flat = rater_index * max(n_items, 1) + item_index
    if has_duplicates(flat):
        dup = np.flatnonzero(np.bincount(flat) > 1)[0]
        k = int(np.flatnonzero(flat == dup)[0])
        raise ValueError(
            f"rater {votes.names[int(votes.rater_ids[k])]!r} voted more than once on "
            f"{int(votes.item_ids[k])!r}"
        )
    data = np.full((n_raters, n_items), np.nan)
    data[rater_index, item_index] = codes
    return data, items


AGREEMENT_KEYS = ("krippendorff_alpha", "fleiss_kappa", "percent_agreement", "gwet_ac1")


def item_bootstraps(
    votes: VoteRows, judge_codes: dict[int, int], rng: np.random.Generator, n_resamples: int
) -> tuple[dict[str, Any], Any]:
    """The agreement section, and the judge's pairwise agreement with the humans (or None),
    with every interval from one item bootstrap: the coefficients and the judge's agreements
    are sums of per-item contributions, so one set of item resamples, drawn once
    (`scoring.stats._resampling.joint_bootstrap`), serves them all. A statistic over other
    items (percent agreement leaves out single-vote items; the judge's, items without a
    verdict) gets resamples of its own items."""
    from scoring.stats import agreement
    from scoring.stats._resampling import joint_bootstrap
    from scoring.stats.reconcile import judge_human_pairwise_plan

    data, items = reliability_matrix(votes)
    plans = {}
    n_raters = data.shape[0]
    if n_raters >= 2 and (np.sum(~np.isnan(data), axis=0) >= 2).any():
        categories = [0, 1, 2]
        plans = {
            "krippendorff_alpha": agreement.krippendorff_alpha_plan(
                data, level="nominal", categories=categories, item_ids=items
            ),
            "fleiss_kappa": agreement.fleiss_kappa_plan(
                data, categories=categories, item_ids=items
            ),
            "percent_agreement": agreement.percent_agreement_plan(data, item_ids=items),
            "gwet_ac1": agreement.gwet_ac_plan(data, categories=categories, item_ids=items),
        }
    judge_plan = None
    if len(votes) and judge_codes and np.isin(votes.item_ids, list(judge_codes)).any():
        judge_plan = judge_human_pairwise_plan(votes.item_ids, votes.codes, judge_codes)
    targets = [plan.target for plan in plans.values()]
    if judge_plan is not None:
        targets.append(judge_plan.target)
    replicates: list = [None] * len(targets)
    if targets and n_resamples > 0:
        replicates = joint_bootstrap(targets, n_resamples, rng)
    estimates = {
        key: plan.result(r) for (key, plan), r in zip(plans.items(), replicates, strict=False)
    }
    pairwise = judge_plan.result(replicates[-1]) if judge_plan is not None else None
    return agreement_section(data, estimates), pairwise


def agreement_section(data: np.ndarray, estimates: dict[str, Any]) -> dict[str, Any]:
    from scoring.stats import agreement

    n_raters, n_items = data.shape
    section: dict[str, Any] = {"n_items": n_items, "n_raters": n_raters}
    if not estimates:
        section.update(
            dict.fromkeys(
                (
                    "krippendorff_alpha",
                    "krippendorff_alpha_ci95",
                    "fleiss_kappa",
                    "fleiss_kappa_ci95",
                    "percent_agreement",
                    "percent_agreement_ci95",
                    "gwet_ac1",
                    "gwet_ac1_ci95",
                    "cohen_kappa_mean",
                )
            )
        )
        section["note"] = "needs items with at least two votes"
        return section
    for key in AGREEMENT_KEYS:
        estimate = estimates[key]
        section[key] = finite(estimate.estimate)
        section[f"{key}_ci95"] = interval(estimate.ci_low, estimate.ci_high)
        # Counted, not silently dropped: the interval is over the resamples where it exists.
        section[f"{key}_undefined_resamples"] = estimate.n_undefined_resamples
        if estimate.n_undefined_resamples:
            section.setdefault("notes", []).append(
                f"{key}: undefined on {estimate.n_undefined_resamples} of "
                f"{estimate.n_resamples} bootstrap resamples (no variation left); its interval "
                "is over the others"
            )
    try:
        pairwise = agreement.cohen_kappa_pairwise(data, min_common_items=5, n_resamples=0)
    except ValueError:
        # No rater pair shares enough items for a defined kappa: report it as unavailable.
        section["cohen_kappa_mean"] = None
    else:
        section["cohen_kappa_mean"] = finite(pairwise.mean.estimate)
    alpha = section["krippendorff_alpha"]
    section["alpha_band"] = (
        None
        if alpha is None
        else "reliable"
        if alpha >= ALPHA_RELIABLE
        else "tentative"
        if alpha >= ALPHA_TENTATIVE
        else "unreliable"
    )
    return section


GATE_METHODS = ("item", "panel")
INTERVAL_UNITS = (
    "The win rate counts every vote (ties and both-bad as half), but the item is the unit of "
    "inference: votes on one item are correlated, so the intervals and the p-value come from "
    "per-item totals. `ci95` (item level, the primary one) generalises to new items like these "
    "judged by this panel of raters; `panel_ci95` (two-way, items and raters) generalises to "
    "new items judged by new raters drawn like these."
)


def win_rate_section(votes: VoteRows) -> dict[str, Any]:
    """Win rate with item-clustered inference (`scoring.stats.winrate_inference`): analytic and
    deterministic, so every build of the same evidence gives the same numbers and gates."""
    from scoring.stats.winrate_inference import gate_from_inference, win_rate_inference

    if not len(votes):
        return {
            "tuned": None,
            "tuned_no_ties": None,
            "ci95": None,
            "panel_ci95": None,
            "p_value": None,
            "n": 0,
            "n_items": 0,
            "unit": "item",
            "gate": {m: {"status": "undecided", "evidence": "no votes yet"} for m in GATE_METHODS},
            "warnings": ["No votes yet."],
            "interval_units": INTERVAL_UNITS,
        }
    _, item_index = first_seen_item_index(votes.item_ids)
    _, rater_index = first_seen_index(votes.rater_ids)
    result = win_rate_inference(item_index=item_index, rater_index=rater_index, codes=votes.codes)
    gates = {}
    for method in GATE_METHODS:
        gate = gate_from_inference(result, method=method)
        gates[method] = {
            "status": gate.status,
            "bound": finite(gate.bound),
            "upper": finite(gate.upper),
            "method": gate.method,
            "evidence": gate.evidence,
        }
    return {
        "tuned": finite(result.win_rate),
        "tuned_no_ties": finite(result.win_rate_no_ties),
        "n": result.n_votes,
        "n_items": result.n_items,
        "tuned_wins": result.tuned_wins,
        "base_wins": result.base_wins,
        "ties": result.ties,
        "ci95": interval(*result.ci),
        "ci_method": result.ci_method,
        "ci95_no_ties": interval(*result.ci_no_ties),
        "p_value": finite(result.p_value),
        "p_value_exact": finite(result.p_value_exact),
        "p_method": result.p_method,
        "se": finite(result.se),
        "design_effect": finite(result.design_effect),
        "effective_n": finite(result.effective_n),
        "panel_ci95": interval(*result.panel_ci) if result.panel_ci else None,
        "panel_method": result.panel_method,
        "n_raters": result.n_raters,
        "top_rater_share": finite(result.top_rater_share),
        "warnings": list(result.warnings),
        "generalises_to": {
            "ci95": result.generalises_to_items,
            "panel_ci95": result.generalises_to_panel,
        },
        "unit": "item",
        "interval_units": INTERVAL_UNITS,
        "gate": gates,
    }


@dataclass(frozen=True)
class OutputLengths:
    """Characters of the base and the tuned output of each item that has both, sorted by item."""

    item_ids: np.ndarray
    tuned: np.ndarray
    base: np.ndarray

    def rows_of(self, item_ids: np.ndarray) -> np.ndarray:
        """The row of each item; KeyError for an item without both outputs."""
        row = np.searchsorted(self.item_ids, item_ids)
        found = row < self.item_ids.size
        found[found] = self.item_ids[row[found]] == item_ids[found]
        if not found.all():
            raise KeyError(int(item_ids[np.flatnonzero(~found)[0]]))
        return row


def output_lengths(study: Study) -> OutputLengths:
    from scoring.columns import CHUNK_ROWS, numeric_columns

    output, item = Output._meta.db_table, Item._meta.db_table
    source = f"FROM {output} o JOIN {item} i ON i.id = o.item_id WHERE i.study_id = %s"
    system = f"CASE o.system WHEN '{System.BASE}' THEN 0 WHEN '{System.TUNED}' THEN 1 ELSE -1 END"
    [(_, table)] = numeric_columns(
        source,
        [study.pk],
        {
            "item_id": ("o.item_id", "int8"),
            "system": (system, "int2"),
            "chars": ("o.text_chars", "int8"),  # length(o.text), stored (see the model)
        },
        chunk_by=f"o.item_id / {CHUNK_ROWS}",
    )
    by_system = []
    for code in (1, 0):
        mine = table["system"] == code
        by_system.append((table["item_id"][mine], table["chars"][mine]))
    (tuned_ids, tuned), (base_ids, base) = by_system
    both, in_tuned, in_base = np.intersect1d(tuned_ids, base_ids, return_indices=True)
    return OutputLengths(both, tuned[in_tuned].astype(np.float64), base[in_base].astype(np.float64))


def length_adjusted_entry(result) -> dict[str, Any]:
    return {
        "value": finite(result.adjusted_win_rate),
        "ci95": interval(*result.ci),
        "ci_method": result.ci_method,
        "slope": finite(result.slope),
        "raw": finite(result.win_rate),
        "n": result.n,
        "n_items": result.n_items,
        "outcome": result.outcome,
        "transform": result.transform,
    }


def length_adjusted_section(
    study: Study,
    votes: VoteRows,
    judge: JudgeVerdicts | None,
    read_lengths: Callable[[], OutputLengths] | None = None,
) -> dict[str, Any] | None:
    """The win rate at zero length difference from a logistic fit of this one pair of systems
    on tanh(length difference), for the human votes and, when there is one, for the judge's
    probabilities. Named for what it is: AlpacaEval 2's length-controlled win rate is a GLM
    fitted across many models with per-instruction difficulty; this is not that."""
    from scoring.stats.winrate import length_adjusted_win_rate

    n_judged = judge.item_ids.size if judge is not None else 0
    if len(votes) < 10 and n_judged < 10:
        return None
    lengths = output_lengths(study) if read_lengths is None else read_lengths()
    section: dict[str, Any] = {
        "name": "length-adjusted win rate (single-pair logistic fit on tanh(length difference))",
        "not": "not AlpacaEval 2's length-controlled win rate (a GLM across many models)",
        "length_unit": "characters",
        "humans": None,
        "judge": None,
    }
    if len(votes) >= 10:
        # Looked up once per item, then spread to its votes (a million binary searches cost
        # more than the fit).
        items, item_index = first_seen_item_index(votes.item_ids)
        rows = lengths.rows_of(items)[item_index]
        result = length_adjusted_win_rate(
            votes.codes, lengths.tuned[rows], lengths.base[rows], item_ids=votes.item_ids
        )
        section["humans"] = length_adjusted_entry(result)
    if judge is not None:
        # In item order (the verdicts are sorted by item): the fit's sums must not depend on
        # the order the database returns them in (the report's hash would).
        known = np.isin(judge.item_ids, lengths.item_ids)
        judged = judge.item_ids[known]
        if judged.size >= 10:
            # The judge's probability that tuned is better is a weighted preference, as
            # AlpacaEval weights its annotator's preferences.
            rows = lengths.rows_of(judged)
            result = length_adjusted_win_rate(
                None,
                lengths.tuned[rows],
                lengths.base[rows],
                probabilities=judge.p_tuned[known],
                item_ids=judged,
            )
            section["judge"] = length_adjusted_entry(result)
    return section


@dataclass(frozen=True)
class Majorities:
    """The human majority of every item with votes or an adjudication, sorted by item id: its
    code (0 base, 1 tuned, 2 tie; nan: no majority, the plurality is shared). An adjudication
    replaces the votes' majority."""

    item_ids: np.ndarray
    codes: np.ndarray


def human_majorities(votes: VoteRows, adjudicated: dict[int, str]) -> Majorities:
    from scoring.stats.votes import category_counts, majority_codes

    item_ids, codes = np.zeros(0, dtype=np.int64), np.zeros(0)
    if len(votes):
        items, counts = category_counts(votes.item_ids, votes.codes)  # both-bad as tie
        item_ids = np.asarray(items, dtype=np.int64)
        codes = majority_codes(counts, on_split="none")
    if adjudicated:
        ruled = np.fromiter(adjudicated, dtype=np.int64, count=len(adjudicated))
        ruling = [2 if CODES[p] == 3 else CODES[p] for p in adjudicated.values()]
        voted = ~np.isin(item_ids, ruled)
        item_ids = np.concatenate([item_ids[voted], ruled])
        codes = np.concatenate([codes[voted], np.asarray(ruling, dtype=np.float64)])
    order = np.argsort(item_ids, kind="stable")
    return Majorities(item_ids[order], codes[order])


def agreement_entry(value) -> dict[str, Any]:
    return {
        "agreement": finite(value.agreement),
        "ci95": interval(value.ci_low, value.ci_high),
        "n_pairs": value.n_pairs,
        "n_items": value.n_items,
    }


def difference_entry(value) -> dict[str, Any]:
    return {"value": finite(value.difference), "ci95": interval(value.ci_low, value.ci_high)}


@dataclass(frozen=True)
class JudgeVerdicts:
    """The primary judge's verdicts on the study's items, as columns sorted by item id: the
    verdict's code, P(tuned better) and whether the item is excluded; `summary` is the judge's
    aggregate row for the report."""

    judge_id: str
    item_ids: np.ndarray
    codes: np.ndarray
    p_tuned: np.ndarray
    excluded: np.ndarray
    summary: dict[str, Any] | None

    def codes_by_item(self) -> dict[int, int]:
        """Verdict code per item, items not excluded."""
        kept = ~self.excluded
        return dict(zip(self.item_ids[kept].tolist(), self.codes[kept].tolist(), strict=True))

    def p_tuned_of(self, item_ids: list[int]) -> list[float | None]:
        """P(tuned better) of each item (None without a verdict)."""
        if not self.item_ids.size:
            return [None] * len(item_ids)
        ids = np.asarray(item_ids, dtype=np.int64)
        row = np.minimum(np.searchsorted(self.item_ids, ids), self.item_ids.size - 1)
        found = self.item_ids[row] == ids
        return [float(p) if ok else None for p, ok in zip(self.p_tuned[row], found, strict=True)]


def judge_reads(study: Study) -> tuple[list, JudgeVerdicts | None]:
    """The judge summaries (`selectors.judge_overview`) and the primary judge's verdicts."""
    judge_id, summaries = selectors.judge_overview(study=study)
    return summaries, judge_verdicts(study, judge_id, summaries)


def judge_verdicts(study: Study, judge_id: str | None, summaries: list) -> JudgeVerdicts | None:
    """The verdicts of the study's primary judge (`judge_id`, from `selectors.judge_overview`
    with its `summaries`), None without one: one statement for the columns."""
    from scoring.columns import CHUNK_ROWS, numeric_columns

    if judge_id is None:
        return None
    verdict, item = JudgeVerdict._meta.db_table, Item._meta.db_table
    source = (  # table names from model metadata; study and judge are parameters
        f"FROM {verdict} v JOIN {item} i ON i.id = v.item_id "
        "WHERE i.study_id = %s AND v.judge_id = %s"
    )
    # Grouped by verdict and exclusion, which then come once per group (as in `vote_table`).
    groups = numeric_columns(
        source,
        [study.pk, judge_id],
        {"item_id": ("v.item_id", "int8"), "p_tuned": ("v.p_tuned", "float8")},
        chunk_by=f"v.id / {CHUNK_ROWS}",
        group_by=("v.verdict", "i.excluded"),
    )
    sizes = [t["item_id"].size for _, t in groups]
    table = {
        "item_id": np.concatenate([t["item_id"] for _, t in groups] or [np.zeros(0, np.int64)]),
        "p_tuned": np.concatenate([t["p_tuned"] for _, t in groups] or [np.zeros(0)]),
        "code": np.repeat(
            np.asarray([CODES.get(verdict, -1) for (verdict, _), _ in groups], dtype=np.int64),
            sizes,
        ),
        "excluded": np.repeat(
            np.asarray([bool(excluded) for (_, excluded), _ in groups], dtype=bool), sizes
        ),
    }
    order = np.argsort(table["item_id"], kind="stable")
    table = {name: column[order] for name, column in table.items()}
    if (table["code"] < 0).any():
        raise ValueError(f"judge {judge_id!r} has a verdict that is not a preference code")
    # Only the judge aggregates: study_scores would recompute every metric aggregate too.
    summary = next(
        (
            {
                "tuned_win_rate": j.tuned_win_rate,
                "position_bias_rate": j.position_bias_rate,
                "n": j.n,
                "judge_id": j.judge_id,
            }
            for j in summaries
            if j.judge_id == judge_id
        ),
        None,
    )
    return JudgeVerdicts(
        judge_id=judge_id,
        item_ids=table["item_id"],
        codes=table["code"],
        p_tuned=table["p_tuned"],
        excluded=table["excluded"].astype(bool),
        summary=summary,
    )


def judge_section(
    judge: JudgeVerdicts | None, majority: Majorities, pairwise
) -> dict[str, Any] | None:
    """The judge's agreement with humans, scored exactly as a human is scored (`pairwise`:
    against each human vote on the same item, the primary figure, beside human-human agreement
    on the same items; from `item_bootstraps`), and against the human majority (secondary).
    None without a judge or without votes on items it judged."""
    from scoring.stats.reconcile import judge_agreement

    if judge is None or pairwise is None:
        return None
    section: dict[str, Any] = {
        "judge_id": judge.judge_id,
        # Primary: the judge as one more rater, so its figure compares with human-human.
        "agreement": finite(pairwise.judge_human.agreement),
        "human_human_agreement": finite(pairwise.human_human.agreement),
        "pairwise": {
            "judge_human": agreement_entry(pairwise.judge_human),
            "human_human": agreement_entry(pairwise.human_human),
            "difference": difference_entry(pairwise.difference),
            "judge_human_without_ties": agreement_entry(pairwise.judge_human_without_ties),
            "human_human_without_ties": agreement_entry(pairwise.human_human_without_ties),
            "difference_without_ties": difference_entry(pairwise.difference_without_ties),
            "n_items": pairwise.n_items,
            "n_votes": pairwise.n_votes,
            "unit": (
                "pairs of votes on the same item (the judge's verdict with each human vote; "
                "every pair of human votes), on items with a verdict; 95% CIs: bootstrap over "
                "items, so they generalise to items like these judged by this panel"
            ),
        },
        "majority": None,
    }
    # Items with a human majority and a verdict (items not excluded), aligned by item id.
    decided = ~np.isnan(majority.codes)
    judged = ~judge.excluded
    common, in_majority, in_judge = np.intersect1d(
        majority.item_ids[decided], judge.item_ids[judged], return_indices=True
    )
    if common.size:
        result = judge_agreement(
            majority.codes[decided][in_majority].astype(np.int64).tolist(),
            judge.codes[judged][in_judge].tolist(),
        )
        section["majority"] = {
            "label": "secondary: judge vs the human majority, items split between systems "
            "dropped (not comparable with human-human agreement)",
            "n": result.n,
            "agreement": finite(result.agreement),
            "agreement_non_tie": finite(result.agreement_without_ties),
            "n_non_tie": result.n_without_ties,
            "cohen_kappa": finite(result.kappa),
            "labels": list(result.labels),
            "confusion": np.asarray(result.confusion).astype(int).tolist(),
        }
    return section


def metric_scores(study: Study, judges: list | None = None) -> tuple[Any, dict]:
    """The study's metric aggregates with their bootstrap CIs (`selectors.study_scores`) and
    the item-level scores they come from: neither depends on the votes."""
    paired = selectors.paired_score_columns(study=study)
    scores = selectors.study_scores(study=study, n_resamples=1_000, paired=paired, judges=judges)
    return scores, paired


def metric_sections(
    study: Study, majority: Majorities, read_scores: Callable[[], tuple] | None = None
) -> tuple[dict, list, dict]:
    from scoring.stats.reconcile import metric_correlations

    scores, paired = metric_scores(study) if read_scores is None else read_scores()
    metrics = {
        m.metric: {
            "base": m.base,
            "tuned": m.tuned,
            "delta": m.delta,
            "delta_ci95": list(m.delta_ci95) if m.delta_ci95 else None,
            "n": m.n,
            "lower_is_better": m.lower_is_better,
            "version": m.version,
        }
        for m in scores.metrics
    }
    deltas: dict[str, np.ndarray] = {}
    for (metric, _version), values in sorted(paired.items()):
        base, tuned = values.at(majority.item_ids)
        deltas[metric] = base - tuned if selectors.lower_is_better(metric) else tuned - base
    correlations = {}
    if majority.item_ids.size and deltas:
        for name, corr in metric_correlations(majority.codes, deltas).items():
            correlations[name] = {
                "spearman": finite(corr.spearman),
                "kendall": finite(corr.kendall),
                "sign_agreement": finite(corr.sign_agreement),
                "n": corr.n,
                "n_sign": corr.n_sign,
            }
    corpus = [
        {"metric": c["metric"], "base": c.get("base", {}), "tuned": c.get("tuned", {})}
        for c in scores.corpus
    ]
    return (
        metrics,
        corpus,
        {
            "correlations": correlations,
            "advice": scores.advice,
            "identity_flags": scores.identity_flags,
        },
    )


def item_external_ids(study: Study) -> dict[int, str]:
    # The study's items rather than `pk__in` the ones needed: a big study has tens of thousands
    # of disagreements, too many parameters for one query (SQLite caps them).
    return dict(Item.objects.filter(study=study).values_list("id", "external_id"))


def disagreement_section(
    study: Study,
    votes: VoteRows,
    judge: JudgeVerdicts | None,
    judge_codes: dict[int, int],
    adjudications: dict[int, dict[str, str]],
    read_external: Callable[[], dict[int, str]] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The first `MAX_REPORTED_DISAGREEMENTS` items (by external id) where raters split or the
    judge disagrees with the human majority, and how many there are in all."""
    from scoring.stats.reconcile import disagreement_flags

    if not len(votes):
        return [], 0
    flags = disagreement_flags(votes.item_ids, votes.codes, judge=judge_codes or None)
    found = np.flatnonzero(flags.flagged)
    if not found.size:
        return [], 0
    external = item_external_ids(study) if read_external is None else read_external()
    keys = [external[flags.items[k]] for k in found.tolist()]
    first = sorted(range(found.size), key=keys.__getitem__)[:MAX_REPORTED_DISAGREEMENTS]
    shown = found[first]
    items = [flags.items[k] for k in shown.tolist()]
    # Each item's votes by name, in name order, the ones it got (both-bad apart from ties).
    counts = flags.counts[shown]
    p_tuned = judge.p_tuned_of(items) if judge is not None else [None] * len(items)
    names = sorted(CODES)
    columns = [CODES[name] for name in names]
    rows = [
        {
            "item_id": keys[k],
            "reasons": list(flags.reasons(j)),
            "votes": {name: c[col] for name, col in zip(names, columns, strict=True) if c[col]},
            "judge_p_tuned": finite(p),
            "adjudication": adjudications.get(item),
        }
        for k, j, item, c, p in zip(
            first, shown.tolist(), items, counts.tolist(), p_tuned, strict=True
        )
    ]
    return rows, int(found.size)


def disagreement_texts(
    report: dict[str, Any], *, study: Study, limit: int | None = None
) -> dict[str, Any]:
    """A copy of `report` whose first `limit` disagreements (all without a limit) carry the
    item's `prompt`, `base_output` and `tuned_output` in full, for the page and the exports a
    researcher reads. Kept out of `build_report` on purpose: the texts are item content, not
    evidence, so the stored builds, the JSON API and the sign-off hash stay the size they were."""
    entries = [e for e in report.get("disagreements") or [] if isinstance(e, dict)]
    wanted = entries if limit is None else entries[:limit]
    texts: dict[str, tuple[str, str, str]] = {}
    ids = [str(e.get("item_id")) for e in wanted]
    for start in range(0, len(ids), ITEM_TEXT_CHUNK):
        items = {
            pk: (external_id, prompt)
            for pk, external_id, prompt in Item.objects.filter(
                study=study, external_id__in=ids[start : start + ITEM_TEXT_CHUNK]
            ).values_list("id", "external_id", "prompt")
        }
        outputs = {
            (item_id, system): text
            for item_id, system, text in Output.objects.filter(item_id__in=items).values_list(
                "item_id", "system", "text"
            )
        }
        for pk, (external_id, prompt) in items.items():
            texts[external_id] = (
                prompt,
                outputs.get((pk, System.BASE), ""),
                outputs.get((pk, System.TUNED), ""),
            )
    enriched = []
    for entry in wanted:
        prompt, base_text, tuned_text = texts.get(str(entry.get("item_id")), ("", "", ""))
        enriched.append(
            {**entry, "prompt": prompt, "base_output": base_text, "tuned_output": tuned_text}
        )
    return {**report, "disagreements": enriched + entries[len(wanted) :]}


def decision_section(study: Study) -> dict[str, Any]:
    """The sequential decision from the study's design and its recorded looks: a read, so
    building or reading a report never spends alpha (`scoring.release.sequential`)."""
    from scoring.release.sequential import sequential_section  # release imports reports

    return sequential_section(study)


def win_decision(win: dict[str, Any], decision: dict[str, Any], method: str = "item") -> dict:
    """The one verdict on the win rate, read by the report's summary and by the release gate.

    The fixed-sample gate (`method`'s interval, deterministic, plus the exact test) names a
    candidate direction; when the study has a sequential design, the direction stands only
    once the sequential test, which pays for every look at the data, has crossed the same
    way. Returns `{"status", "direction", "reason"}` with status `tuned_preferred`,
    `base_preferred`, `not_decided` or `no_votes`."""
    if not win.get("n"):
        return {"status": "no_votes", "direction": None, "reason": "no human votes yet"}
    gate = (win.get("gate") or {}).get(method) or {}
    candidate = {"pass": "tuned", "fail": "base"}.get(gate.get("status"))
    if not decision.get("planned"):
        reason = (
            f"{gate.get('evidence', 'no interval')}; no sequential design (the study was not "
            "opened through the platform), so the fixed-sample interval decides"
        )
        direction = candidate
    elif decision.get("decided"):
        direction = decision.get("direction") if decision.get("direction") == candidate else None
        reason = (
            f"the sequential test crossed for {decision.get('direction')} at look "
            f"{decision.get('look')} ({decision.get('n_items')} items) and {gate.get('evidence')}"
            if direction
            else f"the sequential test crossed for {decision.get('direction')} but "
            f"{gate.get('evidence')}: not decided"
        )
    else:
        direction = None
        if decision.get("finished"):
            reason = "the sequential test finished at its planned maximum without crossing"
        elif candidate:
            reason = (
                f"{gate.get('evidence')}, but the sequential test, which accounts for looking "
                "at the data repeatedly, has not crossed its boundary"
                + (
                    f" (next look at {decision.get('next_look_items')} completed items)"
                    if decision.get("next_look_items")
                    else ""
                )
            )
        else:
            reason = gate.get("evidence") or "the interval contains 1/2"
    status = f"{direction}_preferred" if direction else "not_decided"
    return {"status": status, "direction": direction, "reason": reason}


def verdict_section(report: dict[str, Any]) -> dict[str, Any]:
    """The summary sentence and its level, from `win_decision`: the sentence, the level, the
    sequential decision and the release gate's win-rate criterion say the same thing."""
    win = report["win_rate"]
    decided = win_decision(win, report.get("decision") or {})
    alpha = report["agreement"].get("krippendorff_alpha")
    if decided["status"] == "no_votes":
        return {"summary": "No human votes yet.", "level": "neutral", **decided}
    ci = win.get("ci95")
    head = {
        "tuned_preferred": "The tuned model is preferred",
        "base_preferred": "The base model is preferred",
        "not_decided": "Not decided yet",
    }[decided["status"]]
    parts = [
        f"{head}: tuned wins {win['tuned']:.1%} of {win['n']} human votes on "
        f"{win['n_items']} items (ties as half)"
        + (f", 95% CI [{ci[0]:.1%}, {ci[1]:.1%}] over items" if ci else ""),
        decided["reason"],
    ]
    if alpha is not None:
        band = report["agreement"].get("alpha_band")
        parts.append(f"Krippendorff's alpha {alpha:.3f} ({band})")
    level = {"tuned_preferred": "good", "base_preferred": "bad"}.get(decided["status"], "neutral")
    return {"summary": "; ".join(parts) + ".", "level": level, **decided}


def build_report(*, study: Study, options: ReportOptions | None = None) -> dict[str, Any]:
    """The full research report of `study` as a JSON-serialisable dict (see module docstring)."""
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the report's matrix products are skinny (a few dozen resamples times
    # 100,000 items times a few features), where OpenBLAS's extra threads only spin; on a
    # shared host they cost several times the CPU and wall time of one thread (measured).
    with threadpool_limits(limits=1, user_api="blas"):
        return report_of(study, options or ReportOptions())


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def release_freed_memory() -> None:
    """Hands the heap memory freed by a phase of the report back to the operating system
    (glibc's `malloc_trim`; nothing elsewhere). glibc keeps freed blocks for reuse, and the
    next phase's arrays rarely fit them, so on a million votes the peak RSS was ~20 MiB higher
    without it."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class Prefetch:
    """Reads of the report that do not depend on the votes, run one after the other on a
    second database connection while this thread reads and works through the votes: the
    database's time on them (about a third of its share of a 1M-judgment report) then
    overlaps the report's own computing instead of adding to it.

    Only on PostgreSQL outside a transaction: inside one (a request with ATOMIC_REQUESTS, a
    test) another connection could not see its uncommitted rows, and SQLite serialises
    connections anyway; then, and if a read fails in the other thread, `get` reads in this
    one. Reads are separate statements, as they are without the prefetch: both see committed
    data, each at its own moment (the build's evidence key is read before any of them)."""

    def __init__(self, reads: dict[str, Any]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.reads = reads
        self.futures: dict[str, Any] = {}
        self.done: dict[str, Any] = {}
        self.executor = None
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-read")
            self.futures = {name: self.executor.submit(read) for name, read in reads.items()}
            # The same thread, last: its connection goes back (to the pool) when it is done.
            self.executor.submit(connections.close_all)

    def get(self, name: str) -> Any:
        """The read's result (read once: a read may use an earlier one's)."""
        future = self.futures.get(name)
        if future is not None:
            try:
                return future.result()
            except Exception:  # noqa: BLE001 - read again here, where a real error surfaces
                logger.warning("report prefetch of %s failed; reading it again", name)
                self.futures.pop(name)
        if name not in self.done:
            self.done[name] = self.reads[name]()
        return self.done[name]

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)  # every read ends, then its connection closes


def report_of(study: Study, options: ReportOptions) -> dict[str, Any]:
    prefetch = Prefetch(
        {
            "judge": lambda: judge_reads(study),
            # With its bootstrap (a second of CPU on 100,000 items), which then overlaps the
            # database's work on the votes.
            "scores": lambda: metric_scores(study, prefetch.get("judge")[0]),
            "lengths": lambda: output_lengths(study),
            # Not the items' external ids: 100,000 Python strings held through the whole
            # report cost more memory than their read costs time.
        }
    )
    try:
        return report_with(study, options, prefetch)
    finally:
        prefetch.close()


def report_with(study: Study, options: ReportOptions, prefetch: Prefetch) -> dict[str, Any]:
    rng = np.random.default_rng(options.seed)
    votes_all, gold_votes = fetch_votes(study)
    raters = rater_rows(study, votes_all, gold_votes)
    excluded = (
        {r["rater"] for r in raters if r["flagged"]} if options.exclude_flagged_raters else set()
    )
    votes = keep_raters(votes_all.without_rater_details(), excluded)
    del votes_all, gold_votes
    release_freed_memory()
    adjudication_rows = list(
        Adjudication.objects.filter(item__study=study).values_list(
            "item_id", "preference", "decided_by__username", "rationale"
        )
    )
    adjudicated = {item_id: preference for item_id, preference, _, _ in adjudication_rows}
    adjudications = {
        item_id: {"preference": p, "by": by, "rationale": why}
        for item_id, p, by, why in adjudication_rows
    }
    majority = human_majorities(votes, adjudicated)
    win = win_rate_section(votes)
    _, judge = prefetch.get("judge")
    judge_codes = judge.codes_by_item() if judge is not None else {}
    agreement, pairwise = item_bootstraps(votes, judge_codes, rng, options.n_resamples)
    release_freed_memory()
    judge_human = judge_section(judge, majority, pairwise)
    metrics, corpus, extra = metric_sections(study, majority, lambda: prefetch.get("scores"))
    release_freed_memory()
    counts = dict(zip(NAMES.values(), np.bincount(votes.codes, minlength=4).tolist(), strict=True))
    disagreements, n_disagreements = disagreement_section(
        study,
        votes,
        judge,
        judge_codes if judge_human else {},
        adjudications,
    )
    item_counts = Item.objects.filter(study=study).aggregate(
        items=Count("pk", filter=Q(is_gold=False, excluded=False)),
        gold_items=Count("pk", filter=Q(is_gold=True)),
    )
    report: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "software_version": evalplatform.__version__,
        "generated_at": timezone.now().isoformat(),
        "study": {
            "slug": study.slug,
            "name": study.name,
            "task_type": study.task_type,
            "overlap": study.overlap,
            "max_overlap": study.max_overlap,
            "status": study.status,
            "queue_order": study.queue_order,
            "base_model": study.base_model,
            "tuned_model": study.tuned_model,
            "settings": {k: v for k, v in (study.settings or {}).items() if k != "judge"}
            | (
                {"judge": {k: v for k, v in study.settings["judge"].items() if k != "api_key"}}
                if (study.settings or {}).get("judge")
                else {}
            ),
        },
        "options": {
            "exclude_flagged_raters": options.exclude_flagged_raters,
            "excluded_raters": sorted(excluded),
            "seed": options.seed,
            "n_resamples": options.n_resamples,
        },
        "items": item_counts["items"],
        "gold_items": item_counts["gold_items"],
        "judgments": len(votes),
        "votes": {name: counts.get(name, 0) for name in ("base", "tuned", "tie", "both_bad")},
        "win_rate": win,
        "length_adjusted_win_rate": length_adjusted_section(
            study, votes, judge, lambda: prefetch.get("lengths")
        ),
        "agreement": agreement,
        "judge_human": judge_human,
        "judge": judge.summary if judge is not None else None,
        "raters": raters,
        "metrics": metrics,
        "corpus_metrics": corpus,
        "metric_correlations": extra["correlations"],
        "metric_advice": extra["advice"],
        "identity_flags": extra["identity_flags"],
        # With many raters per item almost every item splits somewhere; the full list is in the
        # item-level export, the report keeps the first ones (by item id) and the total.
        "disagreements": disagreements,
        "disagreements_total": n_disagreements,
        "adjudications": len(adjudications),
        "decision": decision_section(study),
    }
    report["verdict"] = verdict_section(report)
    return report


def canonical_json(report: dict[str, Any]) -> str:
    """Sorted keys, no whitespace, no generation time: the same evidence gives the same text."""
    stable = {k: v for k, v in report.items() if k != "generated_at"}
    return json.dumps(
        stable, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def report_sha256(report: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(report).encode("utf-8")).hexdigest()


# --- item-level rows and preference data ----------------------------------------------------

ITEM_ROW_FIELDS = (
    "item_id",
    "votes_base",
    "votes_tuned",
    "votes_tie",
    "votes_both_bad",
    "majority",
    "adjudicated",
    "judge_verdict",
    "judge_p_tuned",
    "prompt",
    "base_output",
    "tuned_output",
)


def item_texts(
    *, study: Study, chunk_size: int = ITEM_TEXT_CHUNK
) -> Iterator[tuple[int, str, str, str, str]]:
    """`(pk, external_id, prompt, base output, tuned output)` of every item in id order, read
    a chunk of items at a time (keyset pages), so a big study's texts never sit in memory at
    once. `external_id` is the id given at import (a content hash only for a row that had
    none)."""
    last = 0
    while True:
        chunk = list(
            Item.objects.filter(study=study, pk__gt=last)
            .order_by("id")
            .values_list("id", "external_id", "prompt")[:chunk_size]
        )
        if not chunk:
            return
        outputs = {
            (item_id, system): text
            for item_id, system, text in Output.objects.filter(
                item_id__in=[pk for pk, _, _ in chunk]
            ).values_list("item_id", "system", "text")
        }
        for pk, external_id, prompt in chunk:
            yield (
                pk,
                external_id,
                prompt,
                outputs.get((pk, System.BASE), ""),
                outputs.get((pk, System.TUNED), ""),
            )
        last = chunk[-1][0]


def item_rows(*, study: Study) -> Iterator[dict[str, Any]]:
    """One row per item, by the id given at import: votes by preference, majority (adjudication
    wins), judge verdict and probability, the prompt and both outputs in full, and each
    metric's delta (tuned - base) as `delta:<metric>` columns."""
    from scoring.stats.votes import majority_vote

    counts: dict[int, Counter] = defaultdict(Counter)
    for item_id, preferred, n in (
        Judgment.objects.filter(item__study=study)
        .values_list("item_id", "preferred")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        counts[item_id][preferred] = n
    adjudicated = dict(
        Adjudication.objects.filter(item__study=study).values_list("item_id", "preference")
    )
    judge = {
        i: (v, p)
        for i, v, p in JudgeVerdict.objects.filter(item__study=study)
        .order_by("created_at")
        .values_list("item_id", "verdict", "p_tuned")
    }
    paired = selectors.paired_values(study=study)
    for item_id, external_id, prompt, base_text, tuned_text in item_texts(study=study):
        c = counts.get(item_id, Counter())
        codes = [CODES[name] for name, n in c.items() for _ in range(n)]
        majority = (
            majority_vote([item_id] * len(codes), codes, on_split="none").get(item_id)
            if codes
            else None
        )
        row: dict[str, Any] = {
            "item_id": external_id,
            "votes_base": c.get("base", 0),
            "votes_tuned": c.get("tuned", 0),
            "votes_tie": c.get("tie", 0),
            "votes_both_bad": c.get("both_bad", 0),
            "majority": adjudicated.get(item_id)
            or (NAMES[majority] if majority is not None else None),
            "adjudicated": item_id in adjudicated,
            "judge_verdict": judge.get(item_id, (None, None))[0],
            "judge_p_tuned": judge.get(item_id, (None, None))[1],
            "prompt": prompt,
            "base_output": base_text,
            "tuned_output": tuned_text,
        }
        for (metric, _version), per_item in sorted(paired.items()):
            v = per_item.get(item_id, {})
            row[f"delta:{metric}"] = (
                (v[System.TUNED] - v[System.BASE])
                if System.BASE in v and System.TUNED in v
                else None
            )
        yield row


def preference_pairs(*, study: Study, include_judge: bool = False) -> Iterator[dict[str, str]]:
    """Chosen / rejected pairs in the JSONL shape TRL's DPO trainer reads (`prompt`, `chosen`,
    `rejected`), from the human majority (an adjudication wins); ties, both-bad and splits give
    no pair. With `include_judge`, items without a human majority use the judge's verdict.
    Streams `item_rows` (same id order), whose rows carry the prompt and both outputs."""
    left_out = set(
        Item.objects.filter(study=study)
        .filter(Q(is_gold=True) | Q(excluded=True))
        .values_list("external_id", flat=True)
    )
    for row in item_rows(study=study):
        if row["item_id"] in left_out:
            continue
        winner, source = row["majority"], "human"
        if winner is None and include_judge:
            winner, source = row["judge_verdict"], "judge"
        if winner not in ("base", "tuned"):
            continue
        loser = "tuned" if winner == "base" else "base"
        yield {
            "prompt": row["prompt"],
            "chosen": row[f"{winner}_output"],
            "rejected": row[f"{loser}_output"],
            "source": source,
        }
