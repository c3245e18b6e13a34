"""Reads: querysets and plain rows for the queue, progress pages, exports and the rater view.

Selectors own `select_related` / aggregation so views and serializers never cause N+1 queries.
The rater-facing payload is built here, and only here, from an allow-list of fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotations.blinding import display_text
from annotations.errors import NotFoundError

if TYPE_CHECKING:
    from annotations.services import LeasedPair
from annotations.models import (
    Assignment,
    AssignmentState,
    Item,
    Judgment,
    Output,
    Study,
    StudyRater,
    System,
)


def live_or_judged_q(*, now: datetime, prefix: str = "") -> Q:
    """Assignments that hold one of an item's k places: judged, or leased and not expired."""
    return Q(**{f"{prefix}state": AssignmentState.JUDGED}) | Q(
        **{f"{prefix}state": AssignmentState.LEASED, f"{prefix}leased_until__gt": now}
    )


# --- studies --------------------------------------------------------------------------------


def study_list() -> QuerySet[Study]:
    return Study.objects.annotate(
        item_count=Count("items", distinct=True),
        rater_count=Count("memberships", distinct=True),
    ).order_by("-created_at")


def study_get(*, slug: str) -> Study:
    study = Study.objects.filter(slug=slug).first()
    if study is None:
        raise NotFoundError(f"no study {slug!r}")
    return study


@dataclass(frozen=True)
class RaterStudyRow:
    slug: str
    name: str
    instructions: str
    status: str
    judged_by_me: int
    total_items: int


def rater_study_list(*, rater: AbstractBaseUser) -> list[RaterStudyRow]:
    """The studies a rater is assigned to, with how many items they judged of the total.

    Deliberately nothing about other raters' votes: a rater never sees them."""
    memberships = (
        StudyRater.objects.filter(rater=rater)
        .select_related("study")
        .annotate(
            judged=Count(
                "study__items__judgments",
                filter=Q(study__items__judgments__rater=rater),
                distinct=True,
            ),
            total=Count("study__items", distinct=True),
        )
        .order_by("study__name")
    )
    return [
        RaterStudyRow(
            slug=m.study.slug,
            name=m.study.name,
            instructions=m.study.instructions,
            status=m.study.status,
            judged_by_me=m.judged,
            total_items=m.total,
        )
        for m in memberships
    ]


def rater_study_get(*, slug: str, rater: AbstractBaseUser) -> Study:
    study = Study.objects.filter(slug=slug, memberships__rater=rater).first()
    if study is None:
        raise NotFoundError(f"no study {slug!r} assigned to you")
    return study


@dataclass(frozen=True)
class RaterProgress:
    rater: str
    judged: int
    skipped: int
    leased: int
    flagged_fast: int


@dataclass(frozen=True)
class StudyProgress:
    items: int
    gold_items: int
    items_complete: int
    judgments: int
    votes_wanted: int
    live_leases: int
    raters: list[RaterProgress]

    @property
    def percent(self) -> float:
        return (
            100.0 * min(self.judgments, self.votes_wanted) / self.votes_wanted
            if self.votes_wanted
            else 0.0
        )


def study_progress(*, study: Study) -> StudyProgress:
    """Progress of a study, in a fixed number of aggregate queries."""
    now = timezone.now()
    items = Item.objects.filter(study=study)
    regular = items.filter(is_gold=False)
    judged_counts = regular.annotate(
        n=Count("judgments", distinct=True),
    ).filter(n__gte=study.overlap + F("extra_votes"))
    totals = regular.aggregate(n=Count("pk"), extra=Coalesce(Sum("extra_votes"), Value(0)))
    votes_wanted = totals["n"] * study.overlap + totals["extra"]
    per_rater = (
        Assignment.objects.filter(item__study=study)
        .values("rater__username")
        .annotate(
            judged=Count("pk", filter=Q(state=AssignmentState.JUDGED)),
            skipped=Count("pk", filter=Q(state=AssignmentState.SKIPPED)),
            leased=Count("pk", filter=Q(state=AssignmentState.LEASED, leased_until__gt=now)),
            flagged=Count("judgment", filter=Q(judgment__flagged_fast=True)),
        )
        .order_by("rater__username")
    )
    members = list(StudyRater.objects.filter(study=study).values_list("rater__username", flat=True))
    by_name = {row["rater__username"]: row for row in per_rater}
    raters = [
        RaterProgress(
            rater=name,
            judged=by_name.get(name, {}).get("judged", 0),
            skipped=by_name.get(name, {}).get("skipped", 0),
            leased=by_name.get(name, {}).get("leased", 0),
            flagged_fast=by_name.get(name, {}).get("flagged", 0),
        )
        for name in sorted(set(members) | set(by_name))
    ]
    return StudyProgress(
        items=items.count(),
        gold_items=items.filter(is_gold=True).count(),
        items_complete=judged_counts.count(),
        judgments=Judgment.objects.filter(item__study=study, item__is_gold=False).count(),
        votes_wanted=votes_wanted,
        live_leases=Assignment.objects.filter(
            item__study=study, state=AssignmentState.LEASED, leased_until__gt=now
        ).count(),
        raters=raters,
    )


# --- blinding audit -------------------------------------------------------------------------

# The audit reads at most this many items (a seeded sample beyond it): the AUC is stable long
# before, and opening a study must not read every output of a very large one.
BLINDING_AUDIT_MAX_ITEMS = 4_000
BLINDING_AUDIT_SAMPLE_SEED = 7_919


@dataclass(frozen=True)
class OutputPairs:
    """(base text, tuned text) of the items a blinding audit reads, raw as stored."""

    pairs: list[tuple[str, str]]
    items_in_study: int
    sampled: bool


def study_output_pairs(*, study: Study, limit: int = BLINDING_AUDIT_MAX_ITEMS) -> OutputPairs:
    """Both outputs of the study's items that raters may be shown (not excluded), in item id
    order; beyond `limit` items a seeded (reproducible) sample of them."""
    ids = list(
        Item.objects.filter(study=study, excluded=False).order_by("id").values_list("id", flat=True)
    )
    total = len(ids)
    if total > limit:
        rng = np.random.default_rng(BLINDING_AUDIT_SAMPLE_SEED)
        ids = sorted(int(i) for i in rng.choice(np.array(ids), size=limit, replace=False))
    texts: dict[int, dict[str, str]] = {}
    for start in range(0, len(ids), 2_000):
        rows = Output.objects.filter(item_id__in=ids[start : start + 2_000]).values_list(
            "item_id", "system", "text"
        )
        for item_id, system, text in rows:
            texts.setdefault(item_id, {})[system] = text
    pairs = [
        (texts[i][System.BASE], texts[i][System.TUNED])
        for i in ids
        if System.BASE in texts.get(i, {}) and System.TUNED in texts.get(i, {})
    ]
    return OutputPairs(pairs=pairs, items_in_study=total, sampled=total > limit)


def study_blinding_audit(*, study: Study) -> dict[str, Any]:
    """The study's latest stored blinding audit. Raises NotFoundError when none has run (a
    study imported before audits existed): `blinding_audit_run` runs one."""
    if study.blinding_audit is None:
        raise NotFoundError(
            f"no blinding audit of {study.slug!r} yet; run one (POST to this URL, or "
            f"manage.py blinding_audit {study.slug})"
        )
    return study.blinding_audit


# --- the rater's blinded view ---------------------------------------------------------------


@dataclass(frozen=True)
class BlindPair:
    """Everything a rater may see of an assignment. Slot 1 is shown left, slot 2 right.

    The field list is the blinding allow-list: no system, model name, output id, score or vote.
    """

    assignment_id: int
    study: str
    instructions: str
    prompt: str
    slot_1: str
    slot_2: str
    leased_until: datetime


def blind_pair_from_lease(pair: LeasedPair) -> BlindPair:
    """The rater's view of a lease the queue handed out: the texts go into the assignment's
    slots, and the systems stop here.

    Both texts pass through the same display normalisation (`annotations.blinding`: NFC, line
    endings, outer whitespace, the study's prefix list), so a side's surface habits (a leading
    space, a fixed "Sure!") do not tell the rater which is which; the API and the rating page
    both get their texts from here."""
    base_text = display_text(pair.base_text, strip_prefixes=pair.strip_prefixes)
    tuned_text = display_text(pair.tuned_text, strip_prefixes=pair.strip_prefixes)
    base_left = pair.left_system == System.BASE
    return BlindPair(
        assignment_id=pair.assignment_id,
        study=pair.study_slug,
        instructions=pair.instructions,
        prompt=pair.prompt,
        slot_1=base_text if base_left else tuned_text,
        slot_2=tuned_text if base_left else base_text,
        leased_until=pair.leased_until,
    )


# --- exports --------------------------------------------------------------------------------

JUDGMENT_EXPORT_FIELDS = (
    "item_id",
    "rater",
    "preferred",
    "choice",
    "left_system",
    "time_ms",
    "flagged_fast",
    "is_gold",
    "rationale",
    "created_at",
)


def judgment_export_rows(*, study: Study, chunk_size: int = 2_000) -> Iterator[dict[str, Any]]:
    """One row per judgment, streamed in id order (constant memory on large studies)."""
    rows = (
        Judgment.objects.filter(item__study=study)
        .order_by("id")
        .values_list(
            "item__external_id",
            "rater__username",
            "preferred",
            "choice",
            "left_system",
            "time_ms",
            "flagged_fast",
            "item__is_gold",
            "rationale",
            "created_at",
        )
    )
    for values in rows.iterator(chunk_size=chunk_size):
        row = dict(zip(JUDGMENT_EXPORT_FIELDS, values, strict=True))
        row["created_at"] = row["created_at"].isoformat()
        yield row
