"""Reads: querysets and plain rows for the queue, progress pages, exports and the rater view.

Selectors own `select_related` / aggregation so views and serializers never cause N+1 queries.
The rater-facing payload is built here, and only here, from an allow-list of fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotations.errors import NotFoundError

if TYPE_CHECKING:
    from annotations.services import LeasedPair
from annotations.models import (
    Assignment,
    AssignmentState,
    AuditEvent,
    Item,
    Judgment,
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
    slots, and the systems stop here."""
    base_left = pair.left_system == System.BASE
    return BlindPair(
        assignment_id=pair.assignment_id,
        study=pair.study_slug,
        instructions=pair.instructions,
        prompt=pair.prompt,
        slot_1=pair.base_text if base_left else pair.tuned_text,
        slot_2=pair.tuned_text if base_left else pair.base_text,
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


def audit_trail(*, study: Study, limit: int = 500) -> list[AuditEvent]:
    """A study's latest `limit` audit events, oldest first (found by the slug each event
    keeps, so the trail of a deleted study is found too)."""
    events = AuditEvent.objects.filter(study_slug=study.slug).select_related("actor")
    return list(reversed(events.order_by("-id")[:limit]))
