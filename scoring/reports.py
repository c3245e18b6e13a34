"""The research report: agreement, win rate, raters, judge-vs-human and metric-vs-human
reconciliation, disagreements and the sequential decision, as one JSON-serialisable dict.

Data are read with a fixed number of queries (bulk `values_list` reads and database
aggregation, never per-row queries); the statistics come from the pure `scoring.stats` and
`scoring.metrics` modules. The same dict feeds the API, the HTML report, CSV and the sign-off
hash, so it is deterministic for the same data (fixed bootstrap seed, sorted keys).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import Length
from django.utils import timezone

import evalplatform
from annotations.models import Adjudication, Item, Judgment, Output, Study, System
from scoring import selectors
from scoring.models import JudgeVerdict

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
    item_ids: list[int]
    raters: list[str]
    codes: list[int]
    left: list[int]
    seconds: list[float | None]


def fetch_votes(study: Study, *, gold: bool) -> VoteRows:
    """The study's votes in judgment order, codes computed by the database. One plain
    statement: building a million model rows (or `values_list` tuples through Django's
    converters) cost more than the database spent answering."""
    judgment, item = Judgment._meta.db_table, Item._meta.db_table
    # Table names from model metadata; the codes are this module's constants; values are
    # parameters.
    as_code = " ".join(f"WHEN '{name}' THEN {code}" for name, code in CODES.items())
    sql = (
        f"SELECT j.item_id, j.rater_id, CASE j.preferred {as_code} END, "  # noqa: S608
        f"CASE j.left_system {as_code} END, j.time_ms "
        f"FROM {judgment} j JOIN {item} i ON i.id = j.item_id "
        "WHERE i.study_id = %s AND i.is_gold = %s AND i.excluded = %s ORDER BY j.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [study.pk, gold, False])
        rows = cursor.fetchall()
    if not rows:
        return VoteRows([], [], [], [], [])
    item_ids, rater_ids, codes, left, times = (list(column) for column in zip(*rows, strict=True))
    del rows
    seconds = [None if ms is None else ms / 1000.0 for ms in times]
    # Usernames in a second query: one shared string per rater instead of one per vote (a
    # million votes would otherwise hold a million copies of a handful of names).
    users = get_user_model().objects.filter(pk__in=set(rater_ids))
    names = dict(users.values_list("pk", "username"))
    raters = list(map(names.__getitem__, rater_ids))
    return VoteRows(item_ids, raters, codes, left, seconds)


def first_seen_index(values: list) -> tuple[int, np.ndarray]:
    """Distinct values in first-seen order (as `scoring.stats.votes.index_items` orders them):
    their number and each value's index, without a Python-level loop per value."""
    order = dict.fromkeys(values)
    for k, value in enumerate(order):
        order[value] = k
    return len(order), np.fromiter(map(order.__getitem__, values), np.int64, len(values))


def first_seen_item_index(item_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """`first_seen_index` for integer ids, sorted by numpy: the distinct ids in first-seen order
    and each vote's index into them."""
    ids = np.asarray(item_ids, dtype=np.int64)
    distinct, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first)  # first positions are distinct: no ties to break
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return distinct[order], rank[inverse.ravel()]


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
    from scoring.stats.raters import rater_reports
    from scoring.stats.votes import Vote

    gold_answers = {
        item_id: CODES[answer]
        for item_id, answer in Item.objects.filter(study=study, is_gold=True).values_list(
            "id", "gold_preference"
        )
    }
    records = [
        Vote(rater=r, item=i, choice=c, left=left, seconds=s)
        for rows in (votes, gold_votes)
        for i, r, c, left, s in zip(
            rows.item_ids, rows.raters, rows.codes, rows.left, rows.seconds, strict=True
        )
    ]
    reports = rater_reports(records, gold=gold_answers, thresholds=rater_thresholds(study))
    return [
        {
            "rater": str(r.rater),
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
        for r in sorted(reports, key=lambda r: str(r.rater))
    ]


def keep_raters(votes: VoteRows, excluded: set[str]) -> VoteRows:
    if not excluded:
        return votes
    keep = [k for k, rater in enumerate(votes.raters) if rater not in excluded]
    return VoteRows(
        *(
            [column[k] for k in keep]
            for column in (votes.item_ids, votes.raters, votes.codes, votes.left, votes.seconds)
        )
    )


def reliability_matrix(votes: VoteRows) -> np.ndarray:
    """The ``(raters, items)`` matrix of `scoring.stats.votes.votes_to_matrix` (raters and items
    in first-seen order, ``nan`` = no vote, both-bad as tie), built from the columns directly
    rather than from one `Vote` object per vote.

    Raises:
        ValueError: a rater voted twice on the same item.
    """
    n_raters, rater_index = first_seen_index(votes.raters)
    items, item_index = first_seen_item_index(votes.item_ids)
    n_items = items.size
    codes = np.asarray(votes.codes, dtype=np.int64)
    codes[codes == 3] = 2  # both-bad is a tie for agreement
    flat = rater_index * max(n_items, 1) + item_index
    if np.unique(flat).size != flat.size:
        dup = np.flatnonzero(np.bincount(flat) > 1)[0]
        k = int(np.flatnonzero(flat == dup)[0])
        raise ValueError(f"rater {votes.raters[k]!r} voted more than once on {votes.item_ids[k]!r}")
    data = np.full((n_raters, n_items), np.nan)
    data[rater_index, item_index] = codes
    return data


def agreement_section(
    votes: VoteRows, rng: np.random.Generator, n_resamples: int
) -> dict[str, Any]:
    from scoring.stats import agreement

    data = reliability_matrix(votes)
    n_raters, n_items = data.shape
    section: dict[str, Any] = {"n_items": n_items, "n_raters": n_raters}
    multi = np.sum(~np.isnan(data), axis=0) >= 2
    if n_raters < 2 or not multi.any():
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
    categories = [0, 1, 2]
    for key, estimate in (
        (
            "krippendorff_alpha",
            agreement.krippendorff_alpha(
                data,
                level="nominal",
                categories=categories,
                n_resamples=n_resamples,
                rng=rng,
            ),
        ),
        (
            "fleiss_kappa",
            agreement.fleiss_kappa(data, categories=categories, n_resamples=n_resamples, rng=rng),
        ),
        (
            "percent_agreement",
            agreement.percent_agreement(data, n_resamples=n_resamples, rng=rng),
        ),
        (
            "gwet_ac1",
            agreement.gwet_ac1(data, categories=categories, n_resamples=n_resamples, rng=rng),
        ),
    ):
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

    if not votes.codes:
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
    _, rater_index = first_seen_index(votes.raters)
    result = win_rate_inference(
        item_index=item_index, rater_index=rater_index, codes=np.asarray(votes.codes)
    )
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


def output_lengths(study: Study) -> dict[str, dict[int, int]]:
    lengths: dict[str, dict[int, int]] = {System.BASE: {}, System.TUNED: {}}
    for item_id, system, n in (
        Output.objects.filter(item__study=study)
        .annotate(n=Length("text"))
        .values_list("item_id", "system", "n")
    ):
        lengths.setdefault(system, {})[item_id] = n
    return lengths


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
    study: Study, votes: VoteRows, probabilities: dict[int, float]
) -> dict[str, Any] | None:
    """The win rate at zero length difference from a logistic fit of this one pair of systems
    on tanh(length difference), for the human votes and, when there is one, for the judge's
    probabilities. Named for what it is: AlpacaEval 2's length-controlled win rate is a GLM
    fitted across many models with per-instruction difficulty; this is not that."""
    from scoring.stats.winrate import length_adjusted_win_rate

    if len(votes.codes) < 10 and len(probabilities) < 10:
        return None
    lengths = output_lengths(study)
    section: dict[str, Any] = {
        "name": "length-adjusted win rate (single-pair logistic fit on tanh(length difference))",
        "not": "not AlpacaEval 2's length-controlled win rate (a GLM across many models)",
        "length_unit": "characters",
        "humans": None,
        "judge": None,
    }
    if len(votes.codes) >= 10:
        n_votes = len(votes.item_ids)
        tuned, base = (
            np.fromiter(map(lengths[system].__getitem__, votes.item_ids), np.float64, n_votes)
            for system in (System.TUNED, System.BASE)
        )
        result = length_adjusted_win_rate(votes.codes, tuned, base, item_ids=votes.item_ids)
        section["humans"] = length_adjusted_entry(result)
    # In item order: the database returns verdicts in no set order, and the fit's sums must not
    # depend on it (the report's hash would).
    judged = sorted(
        i for i in probabilities if i in lengths[System.TUNED] and i in lengths[System.BASE]
    )
    if len(judged) >= 10:
        # The judge's probability that tuned is better is a weighted preference, as AlpacaEval
        # weights its annotator's preferences.
        result = length_adjusted_win_rate(
            None,
            [lengths[System.TUNED][i] for i in judged],
            [lengths[System.BASE][i] for i in judged],
            probabilities=[probabilities[i] for i in judged],
            item_ids=judged,
        )
        section["judge"] = length_adjusted_entry(result)
    return section


def human_majorities(votes: VoteRows, adjudicated: dict[int, str]) -> dict[int, int | None]:
    from scoring.stats.votes import majority_vote

    majority = majority_vote(votes.item_ids, votes.codes, on_split="none") if votes.codes else {}
    for item_id, preference in adjudicated.items():
        if item_id in majority or preference:
            majority[item_id] = 2 if CODES[preference] == 3 else CODES[preference]
    return majority


def agreement_entry(value) -> dict[str, Any]:
    return {
        "agreement": finite(value.agreement),
        "ci95": interval(value.ci_low, value.ci_high),
        "n_pairs": value.n_pairs,
        "n_items": value.n_items,
    }


def difference_entry(value) -> dict[str, Any]:
    return {"value": finite(value.difference), "ci95": interval(value.ci_low, value.ci_high)}


def judge_section(
    study: Study,
    majority: dict[int, int | None],
    votes: VoteRows,
    rng: np.random.Generator,
    n_resamples: int,
) -> tuple[dict | None, dict | None, dict[int, float]]:
    """The judge's agreement with humans, scored exactly as a human is scored (pairwise
    against each human vote on the same item, the primary figure, beside human-human
    agreement on the same items), and against the human majority (secondary)."""
    from scoring.stats.reconcile import judge_agreement, judge_human_pairwise_agreement

    judge_id = selectors.primary_judge_id(study=study)
    if judge_id is None:
        return None, None, {}
    verdicts = dict(
        JudgeVerdict.objects.filter(
            item__study=study, judge_id=judge_id, item__excluded=False
        ).values_list("item_id", "verdict")
    )
    probabilities = dict(
        JudgeVerdict.objects.filter(item__study=study, judge_id=judge_id).values_list(
            "item_id", "p_tuned"
        )
    )
    # Only the judge aggregates: study_scores would recompute every metric aggregate too.
    summary = selectors.judge_summaries(study=study)
    judge_summary = next(
        (
            {
                "tuned_win_rate": j.tuned_win_rate,
                "position_bias_rate": j.position_bias_rate,
                "n": j.n,
                "judge_id": j.judge_id,
            }
            for j in summary
            if j.judge_id == judge_id
        ),
        None,
    )
    judge_codes = {i: CODES[v] for i, v in verdicts.items()}
    if not votes.codes or not any(i in judge_codes for i in set(votes.item_ids)):
        return None, judge_summary, probabilities
    pairwise = judge_human_pairwise_agreement(
        votes.item_ids, votes.codes, judge_codes, n_resamples=n_resamples, rng=rng
    )
    section: dict[str, Any] = {
        "judge_id": judge_id,
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
    common = {i: m for i, m in majority.items() if i in verdicts and m is not None}
    if common:
        result = judge_agreement(common, {i: judge_codes[i] for i in common})
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
    return section, judge_summary, probabilities


def vote_counts(votes: VoteRows) -> tuple[np.ndarray, np.ndarray]:
    """Items in first-seen order and an ``(items, 4)`` array of their votes per preference code."""
    items, item_index = first_seen_item_index(votes.item_ids)
    codes = np.asarray(votes.codes, dtype=np.int64)
    counts = np.bincount(item_index * 4 + codes, minlength=items.size * 4).reshape(-1, 4)
    return items, counts


def metric_sections(study: Study, majority: dict[int, int | None]) -> tuple[dict, list, dict]:
    from scoring.stats.reconcile import metric_correlations

    scores = selectors.study_scores(study=study, n_resamples=1_000)
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
    items = sorted(i for i, m in majority.items())
    deltas: dict[str, list[float]] = {}
    for (metric, _version), per_item in selectors.paired_values(study=study).items():
        values = []
        for item_id in items:
            v = per_item.get(item_id, {})
            if System.BASE in v and System.TUNED in v:
                delta = v[System.TUNED] - v[System.BASE]
                values.append(-delta if selectors.lower_is_better(metric) else delta)
            else:
                values.append(float("nan"))
        deltas[metric] = values
    correlations = {}
    if items and deltas:
        for name, corr in metric_correlations([majority[i] for i in items], deltas).items():
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


def disagreement_section(
    study: Study,
    votes: VoteRows,
    judge_verdicts: dict[int, int],
    probabilities: dict[int, float],
    adjudications: dict[int, dict[str, str]],
) -> list[dict[str, Any]]:
    from scoring.stats.reconcile import find_disagreements

    if not votes.codes:
        return []
    found = find_disagreements(votes.item_ids, votes.codes, judge=judge_verdicts or None)
    if not found:
        return []
    # The study's items rather than `pk__in` the found ones: a big study has tens of thousands
    # of disagreements, too many parameters for one query (SQLite caps them).
    external = dict(Item.objects.filter(study=study).values_list("id", "external_id"))
    items, counts = vote_counts(votes)
    row = dict(zip(items.tolist(), range(items.size), strict=True))
    found_counts = counts[[row[d.item] for d in found]].tolist()
    names = sorted(CODES)  # each item's vote counts by name, in name order, the ones it got
    columns = [CODES[name] for name in names]
    return [
        {
            "item_id": external[d.item],
            "reasons": list(d.reasons),
            "votes": {name: c[k] for name, k in zip(names, columns, strict=True) if c[k]},
            "judge_p_tuned": finite(probabilities.get(d.item)),
            "adjudication": adjudications.get(d.item),
        }
        for d, c in sorted(zip(found, found_counts, strict=True), key=lambda p: external[p[0].item])
    ]


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
    options = options or ReportOptions()
    rng = np.random.default_rng(options.seed)
    votes_all = fetch_votes(study, gold=False)
    gold_votes = fetch_votes(study, gold=True)
    raters = rater_rows(study, votes_all, gold_votes)
    excluded = (
        {r["rater"] for r in raters if r["flagged"]} if options.exclude_flagged_raters else set()
    )
    votes = keep_raters(votes_all, excluded)
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
    judge_human, judge_summary, probabilities = judge_section(
        study, majority, votes, rng, options.n_resamples
    )
    judge_codes = {}
    if judge_human:
        judge_codes = {
            i: CODES[v]
            for i, v in JudgeVerdict.objects.filter(
                item__study=study, judge_id=judge_human["judge_id"]
            ).values_list("item_id", "verdict")
        }
    metrics, corpus, extra = metric_sections(study, majority)
    counts = dict(zip(NAMES.values(), np.bincount(votes.codes, minlength=4).tolist(), strict=True))
    disagreements = disagreement_section(study, votes, judge_codes, probabilities, adjudications)
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
        "items": Item.objects.filter(study=study, is_gold=False, excluded=False).count(),
        "gold_items": Item.objects.filter(study=study, is_gold=True).count(),
        "judgments": len(votes.codes),
        "votes": {name: counts.get(name, 0) for name in ("base", "tuned", "tie", "both_bad")},
        "win_rate": win,
        "length_adjusted_win_rate": length_adjusted_section(study, votes, probabilities),
        "agreement": agreement_section(votes, rng, options.n_resamples),
        "judge_human": judge_human,
        "judge": judge_summary,
        "raters": raters,
        "metrics": metrics,
        "corpus_metrics": corpus,
        "metric_correlations": extra["correlations"],
        "metric_advice": extra["advice"],
        "identity_flags": extra["identity_flags"],
        "disagreements": disagreements[:MAX_REPORTED_DISAGREEMENTS],
        # With many raters per item almost every item splits somewhere; the full list is in the
        # item-level export, the report keeps the first ones (by item id) and the total.
        "disagreements_total": len(disagreements),
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
