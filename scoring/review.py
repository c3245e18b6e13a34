"""Reads for the researcher's disagreement review: which items need a second look, and on one
page of them everything a ruling needs (prompt, both responses labelled base and tuned, each
rater's vote with rationale and time, the judge's verdict and its evidence, any adjudication).

This is a researcher page, never rater-facing: it names the systems on purpose.

The items and their reasons come from the pure `scoring.stats.reconcile.find_disagreements`
over the same votes and judge the research report uses (non-gold, non-excluded items; the judge
with the most verdicts), so the page and the report list the same items. Queries are bounded
whatever the study's size: the study-wide reads are aggregates or single-column lists (votes
grouped by item and preference, the judge's verdict codes, adjudicated item ids, the raters),
and the page's details are read for its items only, one query per kind of record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Count

from annotations.errors import DomainValidationError
from annotations.models import Adjudication, Judgment, Output, Study, System
from scoring import selectors
from scoring.models import JudgeVerdict
from scoring.stats.reconcile import (
    REASON_JUDGE_DISAGREES,
    REASON_NO_MAJORITY,
    REASON_RATERS_SPLIT,
    find_disagreements,
)
from scoring.stats.votes import BASE, BOTH_BAD, TIE, TUNED, majority_vote

CODES = {"base": BASE, "tuned": TUNED, "tie": TIE, "both_bad": BOTH_BAD}
NAMES = {code: name for name, code in CODES.items()}

# The filters a researcher can pick, in the order the page offers them.
REVIEW_REASONS: dict[str, str] = {
    REASON_RATERS_SPLIT: "Raters split",
    REASON_NO_MAJORITY: "No human majority",
    REASON_JUDGE_DISAGREES: "Judge disagrees with the human majority",
}
ADJUDICATED_CHOICES: dict[str, str] = {"no": "Not adjudicated yet", "yes": "Adjudicated"}
PER_PAGE = 20
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class ReviewFilters:
    """What the list is narrowed to; empty strings mean "any"."""

    reason: str = ""
    rater: str = ""
    adjudicated: str = ""

    def as_query(self) -> dict[str, str]:
        """The non-empty filters, for links that keep them."""
        return {k: v for k, v in vars(self).items() if v}


def review_filters_from(params: Mapping[str, Any]) -> ReviewFilters:
    """Filters from query (or form) parameters. Raises DomainValidationError naming the field
    for an unknown reason or adjudication state."""
    reason = str(params.get("reason") or "").strip()
    adjudicated = str(params.get("adjudicated") or "").strip()
    if reason and reason not in REVIEW_REASONS:
        raise DomainValidationError(
            f"reason must be one of {', '.join(REVIEW_REASONS)}", errors={"reason": ["invalid"]}
        )
    if adjudicated and adjudicated not in ADJUDICATED_CHOICES:
        raise DomainValidationError(
            "adjudicated must be yes or no", errors={"adjudicated": ["invalid"]}
        )
    return ReviewFilters(
        reason=reason, rater=str(params.get("rater") or "").strip(), adjudicated=adjudicated
    )


@dataclass(frozen=True)
class ReviewVote:
    """One rater's judgment. `left_system` is the system shown in slot 1 (left)."""

    rater: str
    preferred: str
    left_system: str
    rationale: str
    time_ms: int | None
    flagged_fast: bool
    created_at: datetime

    @property
    def seconds(self) -> float | None:
        return self.time_ms / 1000 if self.time_ms is not None else None


@dataclass(frozen=True)
class ReviewJudge:
    """The judge's verdict on the item. `rationale` is the judge's written reason when the
    verdict record holds one; `evidence` restates what it stores (the probabilities behind
    the verdict) in sentences."""

    judge_id: str
    template: str
    verdict: str
    p_tuned: float
    position_bias: bool
    rationale: str
    evidence: list[str]


@dataclass(frozen=True)
class ReviewAdjudication:
    preference: str
    rationale: str
    decided_by: str
    updated_at: datetime


@dataclass(frozen=True)
class ReviewItem:
    item_pk: int
    item_id: str
    prompt: str
    reference: str
    base_text: str
    tuned_text: str
    base_model: str
    tuned_model: str
    reasons: tuple[str, ...]
    votes: dict[str, int]
    human_majority: str | None
    judgments: list[ReviewVote]
    judge: ReviewJudge | None
    adjudication: ReviewAdjudication | None

    @property
    def reason_labels(self) -> list[str]:
        return [REVIEW_REASONS.get(reason, reason) for reason in self.reasons]


@dataclass(frozen=True)
class ReviewPage:
    """One page of the disagreement list. `total` counts the items matching the filters,
    `reason_counts` and `total_unfiltered` the study's disagreements before filtering."""

    items: list[ReviewItem]
    filters: ReviewFilters
    page: int
    pages: int
    per_page: int
    total: int
    total_unfiltered: int
    adjudicated: int
    reason_counts: dict[str, int]
    raters: list[str]
    judge_id: str | None
    has_previous: bool = False
    has_next: bool = False
    page_numbers: list[int | str] = field(default_factory=list)

    @property
    def reason_options(self) -> list[tuple[str, str, int]]:
        """(value, label, how many disagreements have it) for the reason filter."""
        return [(k, label, self.reason_counts.get(k, 0)) for k, label in REVIEW_REASONS.items()]


def disagreement_review(
    *,
    study: Study,
    filters: ReviewFilters | None = None,
    page: int | str = 1,
    per_page: int = PER_PAGE,
) -> ReviewPage:
    """The study's disagreements narrowed by `filters`, in item (import) order, and the
    details of the items on `page` (clamped to the last page; a bad number is page 1).

    At most eleven queries, however many items, votes or disagreements the study has.
    """
    filters = filters or ReviewFilters()
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    judge_id = selectors.primary_judge_id(study=study)
    found = _disagreements(study, judge_id)
    reason_counts = {
        reason: sum(reason in reasons for reasons in found.values()) for reason in REVIEW_REASONS
    }
    adjudicated_ids = set(
        Adjudication.objects.filter(item__study=study).values_list("item_id", flat=True)
    )
    # `.order_by()`: Judgment's default ordering by id would make DISTINCT per judgment.
    raters = sorted(
        Judgment.objects.filter(item__study=study, item__is_gold=False)
        .order_by()
        .values_list("rater__username", flat=True)
        .distinct()
    )
    selected = [item for item, reasons in found.items() if _matches(filters, reasons)]
    if filters.adjudicated:
        want = filters.adjudicated == "yes"
        selected = [item for item in selected if (item in adjudicated_ids) == want]
    if filters.rater:
        judged = set(
            Judgment.objects.filter(item__study=study, rater__username=filters.rater).values_list(
                "item_id", flat=True
            )
        )
        selected = [item for item in selected if item in judged]

    paginator = Paginator(selected, per_page)
    current = paginator.get_page(page)
    page_ids = list(current.object_list)
    return ReviewPage(
        items=_page_items(study, page_ids, found, judge_id),
        filters=filters,
        page=current.number,
        pages=paginator.num_pages,
        per_page=per_page,
        total=paginator.count,
        total_unfiltered=len(found),
        adjudicated=sum(item in adjudicated_ids for item in found),
        reason_counts=reason_counts,
        raters=raters,
        judge_id=judge_id,
        has_previous=current.has_previous(),
        has_next=current.has_next(),
        page_numbers=list(
            paginator.get_elided_page_range(current.number, on_each_side=2, on_ends=1)
        ),
    )


def _matches(filters: ReviewFilters, reasons: tuple[str, ...]) -> bool:
    return not filters.reason or filters.reason in reasons


def _disagreements(study: Study, judge_id: str | None) -> dict[int, tuple[str, ...]]:
    """Item pk -> reasons, in item order, for the study's non-gold, non-excluded items."""
    grouped = (
        Judgment.objects.filter(item__study=study, item__is_gold=False, item__excluded=False)
        .values_list("item_id", "preferred")
        .annotate(n=Count("pk"))
        .order_by("item_id", "preferred")
    )
    item_ids: list[int] = []
    codes: list[int] = []
    for item_id, preferred, n in grouped:
        item_ids.extend([item_id] * n)
        codes.extend([CODES[preferred]] * n)
    if not codes:
        return {}
    judge = None
    if judge_id is not None:
        judge = {
            item_id: CODES[verdict]
            for item_id, verdict in JudgeVerdict.objects.filter(
                item__study=study, judge_id=judge_id
            ).values_list("item_id", "verdict")
        }
    return {d.item: d.reasons for d in find_disagreements(item_ids, codes, judge=judge or None)}


def _page_items(
    study: Study, page_ids: list[int], found: dict[int, tuple[str, ...]], judge_id: str | None
) -> list[ReviewItem]:
    """Everything the page shows of its items: one query per kind of record."""
    if not page_ids:
        return []
    items = {
        row["pk"]: row
        for row in study.items.filter(pk__in=page_ids).values(
            "pk", "external_id", "prompt", "reference"
        )
    }
    outputs: dict[int, dict[str, tuple[str, str]]] = defaultdict(dict)
    for item_id, system, text, model_name in Output.objects.filter(
        item_id__in=page_ids
    ).values_list("item_id", "system", "text", "model_name"):
        outputs[item_id][system] = (text, model_name)
    votes: dict[int, list[ReviewVote]] = defaultdict(list)
    judgments = (
        Judgment.objects.filter(item_id__in=page_ids)
        .order_by("item_id", "created_at", "id")
        .values_list(
            "item_id",
            "rater__username",
            "preferred",
            "left_system",
            "rationale",
            "time_ms",
            "flagged_fast",
            "created_at",
        )
    )
    for item_id, rater, preferred, left_system, rationale, time_ms, fast, at in judgments:
        votes[item_id].append(
            ReviewVote(
                rater=rater,
                preferred=preferred,
                left_system=left_system,
                rationale=rationale,
                time_ms=time_ms,
                flagged_fast=fast,
                created_at=at,
            )
        )
    verdicts = {}
    if judge_id is not None:
        page_verdicts = JudgeVerdict.objects.filter(item_id__in=page_ids, judge_id=judge_id)
        verdicts = {v.item_id: v for v in page_verdicts}
    adjudications = {
        item_id: ReviewAdjudication(preference, rationale, by, at)
        for item_id, preference, rationale, by, at in Adjudication.objects.filter(
            item_id__in=page_ids
        ).values_list("item_id", "preference", "rationale", "decided_by__username", "updated_at")
    }
    out = []
    for pk in page_ids:
        item = items[pk]
        item_votes = votes.get(pk, [])
        counts: dict[str, int] = defaultdict(int)
        for vote in item_votes:
            counts[vote.preferred] += 1
        majority = majority_vote(
            [pk] * len(item_votes), [CODES[v.preferred] for v in item_votes], on_split="none"
        ).get(pk)
        base_text, base_model = outputs[pk].get(System.BASE, ("", ""))
        tuned_text, tuned_model = outputs[pk].get(System.TUNED, ("", ""))
        out.append(
            ReviewItem(
                item_pk=pk,
                item_id=item["external_id"],
                prompt=item["prompt"],
                reference=item["reference"],
                base_text=base_text,
                tuned_text=tuned_text,
                base_model=base_model or study.base_model,
                tuned_model=tuned_model or study.tuned_model,
                reasons=found[pk],
                votes={name: counts[name] for name in CODES if counts[name]},
                human_majority=NAMES[majority] if majority is not None else None,
                judgments=item_votes,
                judge=judge_view(verdicts[pk]) if pk in verdicts else None,
                adjudication=adjudications.get(pk),
            )
        )
    return out


# Keys a judge backend may use for its written reason (none of the built-in ones stores one:
# their verdicts are read from label probabilities, see scoring.lm.judge).
_RATIONALE_KEYS = ("rationale", "explanation", "text")
_ORDERS = {"tuned_first": "Tuned shown first", "base_first": "Base shown first"}


def judge_view(verdict: JudgeVerdict) -> ReviewJudge:
    """A verdict as the review shows it: its written rationale if stored, and its stored
    probabilities (`raw`) as sentences."""
    raw = verdict.raw or {}
    rationale = next((raw[k] for k in _RATIONALE_KEYS if isinstance(raw.get(k), str)), "")
    evidence = []
    p_first = raw.get("p_first") or {}
    # A fixed order: PostgreSQL's jsonb does not keep the keys' order.
    orders = [k for k in _ORDERS if k in p_first] + sorted(set(p_first) - set(_ORDERS))
    for order in orders:
        p = p_first[order]
        if isinstance(p, int | float):
            evidence.append(f"{_ORDERS.get(order, order)}: P(first answer better) = {p:.2f}")
    expected = raw.get("expected_scores") or {}
    if all(isinstance(expected.get(k), int | float) for k in ("tuned", "base")):
        evidence.append(
            f"Expected grade: tuned {expected['tuned']:.2f}, base {expected['base']:.2f}"
        )
    return ReviewJudge(
        judge_id=verdict.judge_id,
        template=verdict.template,
        verdict=verdict.verdict,
        p_tuned=verdict.p_tuned,
        position_bias=verdict.position_bias,
        rationale=rationale.strip(),
        evidence=evidence,
    )


__all__ = [
    "ADJUDICATED_CHOICES",
    "PER_PAGE",
    "REVIEW_REASONS",
    "ReviewFilters",
    "ReviewItem",
    "ReviewPage",
    "disagreement_review",
    "review_filters_from",
]
