"""Reads: querysets and plain rows for the queue, progress pages, exports and the rater view.

Selectors own `select_related` / aggregation so views and serializers never cause N+1 queries.
The rater-facing payload is built here, and only here, from an allow-list of fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Max, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotations import queue_sql
from annotations.blinding import display_text
from annotations.errors import NotFoundError, RaterRemovedError
from annotations.queue_rules import item_capacity_expr

if TYPE_CHECKING:
    from annotations.services import LeasedPair
from annotations.models import (
    NEUTRAL_RATER_TITLE,
    STUDY_TRANSITIONS,
    Assignment,
    AssignmentState,
    AuditEvent,
    Choice,
    CrowdLink,
    Item,
    Judgment,
    Output,
    Study,
    StudyInvite,
    StudyRater,
    StudyStatus,
    System,
)

# --- studies --------------------------------------------------------------------------------


def study_list() -> QuerySet[Study]:
    return Study.objects.annotate(
        item_count=Count("items", distinct=True),
        rater_count=Count(
            "memberships", filter=Q(memberships__removed_at__isnull=True), distinct=True
        ),
    ).order_by("-created_at")


def study_get(*, slug: str) -> Study:
    study = Study.objects.filter(slug=slug).first()
    if study is None:
        raise NotFoundError(f"no study {slug!r}")
    return study


@dataclass(frozen=True)
class RaterStudyRow:
    """A study as its rater sees it: the rater title and opaque id (never the internal name or
    slug), and their own progress."""

    public_id: UUID
    title: str
    instructions: str
    status: str
    judged_by_me: int
    left_for_me: int
    # A crowd participant's cap (None for other raters) and their link's completion code,
    # set only once the server counts them done: at the cap, or nothing left for them in the
    # open study.
    item_cap: int | None = None
    completion_code: str | None = None

    @property
    def can_judge(self) -> int:
        """What the rater can judge in the study: their judgments plus what is left."""
        return self.judged_by_me + self.left_for_me

    @property
    def open_for_rating(self) -> bool:
        return self.status == StudyStatus.OPEN

    @property
    def has_work(self) -> bool:
        return self.open_for_rating and self.left_for_me > 0


def _rater_study_row(row: queue_sql.RaterStudy, *, rater: AbstractBaseUser) -> RaterStudyRow:
    left = queue_sql.items_left_for_rater(
        study_id=row.study_id, overlap=row.overlap, rater_id=rater.pk, now=timezone.now()
    )
    judged = int(row.judged)
    done = False
    if row.item_cap is not None:
        # The queue serves a crowd participant no more than their cap (rating.pair_next).
        left = max(0, min(left, row.item_cap - judged))
        done = judged >= row.item_cap or (row.status == StudyStatus.OPEN and left == 0)
    return RaterStudyRow(
        public_id=UUID(str(row.public_id)),
        title=row.rater_title or NEUTRAL_RATER_TITLE,
        instructions=row.instructions,
        status=row.status,
        judged_by_me=judged,
        left_for_me=left,
        item_cap=row.item_cap,
        completion_code=row.completion_code if done else None,
    )


def rater_study_list(*, rater: AbstractBaseUser) -> list[RaterStudyRow]:
    """The studies a rater is assigned to, with how many items they judged and how many are
    still open to them (1 + one statement per study).

    Deliberately nothing about other raters' votes: a rater never sees them."""
    rows = queue_sql.rater_studies_read(rater_id=rater.pk)
    return [_rater_study_row(row, rater=rater) for row in rows]


def rater_progress_get(*, public_id: UUID, rater: AbstractBaseUser) -> RaterStudyRow:
    """One study of the rater with their progress: the rating page's counter ("12 of 200 for
    you"). Raises NotFoundError when the rater is not in the study, RaterRemovedError when
    they were removed from it."""
    rows = queue_sql.rater_studies_read(rater_id=rater.pk, public_id=public_id)
    if not rows:
        raise NotFoundError("no such study assigned to you")
    if rows[0].removed:
        raise RaterRemovedError()
    return _rater_study_row(rows[0], rater=rater)


def rater_study_get(
    *, rater: AbstractBaseUser, public_id: UUID | None = None, slug: str | None = None
) -> Study:
    """A study of the rater by its public id (or, for old links, its slug). Raises
    NotFoundError when the rater is not in it, RaterRemovedError when they were removed."""
    lookup = {"public_id": public_id} if public_id is not None else {"slug": slug}
    study = (
        Study.objects.filter(memberships__rater=rater, **lookup)
        .annotate(rater_removed_at=F("memberships__removed_at"))
        .first()
    )
    if study is None:
        raise NotFoundError("no such study assigned to you")
    if study.rater_removed_at is not None:
        raise RaterRemovedError()
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
    excluded_items: int
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
    """Progress of a study, in a fixed number of aggregate queries. Excluded items are out for
    good (never served, left out of the report), so they count in neither the votes wanted nor
    the items complete; otherwise a study with excluded items could never reach 100%."""
    now = timezone.now()
    items = Item.objects.filter(study=study)
    regular = items.filter(is_gold=False, excluded=False)
    judged_counts = regular.annotate(
        n=Count("judgments", distinct=True),
    ).filter(n__gte=item_capacity_expr(overlap=study.overlap))
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
        excluded_items=items.filter(is_gold=False, excluded=True).count(),
        items_complete=judged_counts.count(),
        judgments=Judgment.objects.filter(
            item__study=study, item__is_gold=False, item__excluded=False
        ).count(),
        votes_wanted=votes_wanted,
        live_leases=Assignment.objects.filter(
            item__study=study, state=AssignmentState.LEASED, leased_until__gt=now
        ).count(),
        raters=raters,
    )


@dataclass(frozen=True)
class StudySetup:
    """Where a study stands on the way from created to collecting, for the researcher's
    checklist: items and gold items imported, raters assigned, instructions written."""

    items: int
    gold_items: int
    raters: int
    has_instructions: bool


def study_setup(*, study: Study) -> StudySetup:
    """Two aggregate queries."""
    counts = Item.objects.filter(study=study).aggregate(
        items=Count("pk"), gold=Count("pk", filter=Q(is_gold=True))
    )
    return StudySetup(
        items=counts["items"],
        gold_items=counts["gold"],
        raters=StudyRater.objects.filter(study=study).count(),
        has_instructions=bool(study.instructions.strip()),
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


# --- why a study cannot finish --------------------------------------------------------------


@dataclass(frozen=True)
class Blocker:
    """One reason items cannot get the votes they still want, and what the researcher can do.

    `reason` is a stable code (see `BLOCKER_REASONS`), `items` how many items it holds back,
    `message` and `action` the sentences the study page shows."""

    reason: str
    items: int
    message: str
    action: str


@dataclass(frozen=True)
class StudyBlockers:
    """Why the study's remaining items are not being rated.

    `items_open`: items (not gold, not excluded) with fewer judgments than they want;
    `rateable`: those the queue could serve an assigned rater now (an open place and a rater
    who has not met the item; some may still be short of raters to finish); `blocked`: the
    reasons items wait, in the order a researcher should act on them."""

    items_open: int
    rateable: int
    blocked: list[Blocker]

    @property
    def stuck(self) -> bool:
        """Items remain and none of them can be served to anyone right now."""
        return self.items_open > 0 and self.rateable == 0


BLOCKER_REASONS = (
    "study_not_open",
    "no_raters",
    "held",
    "raters_exhausted",
    "raters_short",
    "leases_in_flight",
)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def study_blockers(*, study: Study) -> StudyBlockers:
    """Why items of `study` still want votes and are not being rated, with what to do.

    Three aggregate queries whatever the study's size: the membership count, one pass over the
    study's unfinished items (each item's judged, live and "met by a current rater" assignment
    counts in an inner GROUP BY, classified in the outer aggregate) and, only when leases hold
    the last places, when the latest of them expires.

    An item wants `overlap + extra_votes` judgments (the queue's capacity rule). Its open
    places are those not judged and not held by a live lease. The raters who could still fill
    them are the assigned raters who have not judged, skipped or leased it (the queue never
    serves an item twice to one rater), so an item is blocked when it has more open places
    than such raters: with four raters assigned, a split item asking for a fifth vote waits for
    a rater who does not exist.
    """
    now = timezone.now()
    member_ids = StudyRater.objects.filter(study=study, removed_at__isnull=True).values("rater_id")
    n_raters = member_ids.count()
    live = Q(assignments__state=AssignmentState.LEASED, assignments__leased_until__gt=now)
    met = Q(assignments__rater_id__in=member_ids) & (
        Q(assignments__state__in=[AssignmentState.JUDGED, AssignmentState.SKIPPED]) | live
    )
    unfinished = (
        Item.objects.filter(study=study, is_gold=False, excluded=False)
        .annotate(
            wanted=F("extra_votes") + Value(study.overlap),
            judged=Count("assignments", filter=Q(assignments__state=AssignmentState.JUDGED)),
            leased=Count("assignments", filter=live),
            met=Count("assignments", filter=met),
        )
        .filter(judged__lt=F("wanted"))
    )
    # open places = wanted - judged - leased; raters left = n_raters - met.
    waits = Q(held=False)
    no_place = waits & Q(wanted__lte=F("judged") + F("leased"))
    has_place = waits & Q(wanted__gt=F("judged") + F("leased"))
    fillable = F("judged") + F("leased") + Value(n_raters) - F("met")
    counts = unfinished.aggregate(
        items_open=Count("pk"),
        held_items=Count("pk", filter=Q(held=True)),
        leases_only=Count("pk", filter=no_place),
        exhausted=Count("pk", filter=has_place & Q(met__gte=n_raters)),
        exhausted_split=Count("pk", filter=has_place & Q(met__gte=n_raters) & Q(extra_votes__gt=0)),
        servable=Count("pk", filter=has_place & Q(met__lt=n_raters)),
        short=Count("pk", filter=has_place & Q(met__lt=n_raters) & Q(wanted__gt=fillable)),
        short_split=Count(
            "pk",
            filter=has_place & Q(met__lt=n_raters) & Q(wanted__gt=fillable) & Q(extra_votes__gt=0),
        ),
    )
    items_open = counts["items_open"]
    blocked: list[Blocker] = []
    if not items_open:
        return StudyBlockers(items_open=0, rateable=0, blocked=[])
    waiting = items_open - counts["held_items"]
    if study.status != StudyStatus.OPEN:
        blocked.append(
            Blocker(
                reason="study_not_open",
                items=items_open,
                message=(
                    f"The study is {study.get_status_display().lower()}: raters are served "
                    f"pairs only while it is collecting, and "
                    f"{_plural(items_open, 'item still wants', 'items still want')} votes."
                ),
                action=(
                    "Set the status to open (collecting)."
                    if StudyStatus.OPEN in STUDY_TRANSITIONS[study.status]
                    else "To collect more votes, move it back to reconciling, then to open."
                ),
            )
        )
    if n_raters == 0:
        blocked.append(
            Blocker(
                reason="no_raters",
                items=waiting,
                message="No raters are assigned to this study.",
                action="Assign raters.",
            )
        )
    if held := counts["held_items"]:
        blocked.append(
            Blocker(
                reason="held",
                items=held,
                message=(
                    f"{_plural(held, 'item is', 'items are')} held from raters until a "
                    "researcher decides (for example, an output names its own model)."
                ),
                action="Decide on the held items (identity flags on the scores page).",
            )
        )
    if n_raters:
        blocked += _rater_blockers(study, n_raters, counts)
    if counts["leases_only"]:
        latest = Assignment.objects.filter(
            item__study=study, state=AssignmentState.LEASED, leased_until__gt=now
        ).aggregate(latest=Max("leased_until"))["latest"]
        until = f" (the last one by {latest:%H:%M} UTC)" if latest else ""
        blocked.append(
            Blocker(
                reason="leases_in_flight",
                items=counts["leases_only"],
                message=(
                    f"{_plural(counts['leases_only'], 'item waits', 'items wait')} only for "
                    "pairs raters have open right now."
                ),
                action=(
                    f"Wait: each is judged, or returns to the pool when its lease expires{until}."
                ),
            )
        )
    rateable = counts["servable"] if study.status == StudyStatus.OPEN else 0
    return StudyBlockers(items_open=items_open, rateable=rateable, blocked=blocked)


def _rater_blockers(study: Study, n_raters: int, counts: dict[str, int]) -> list[Blocker]:
    """Items with more open places than assigned raters who have not met them."""

    def action(n_items: int, n_split: int) -> str:
        # Lowering max_overlap trims the split items' extra votes (`study_update`); lowering k
        # shrinks every item's want.
        if n_split == n_items:
            return (
                "Assign more raters, or lower max_overlap (these are split items asking for "
                "extra votes)."
            )
        if n_split:
            return (
                f"Assign more raters, or lower k (now {study.overlap}) or max_overlap "
                f"(now {study.max_overlap}); {n_split} of them are split items asking for "
                "extra votes."
            )
        return f"Assign more raters, or lower k (now {study.overlap})."

    out = []
    raters = _plural(n_raters, "assigned rater", "assigned raters")
    everyone = "the only assigned rater" if n_raters == 1 else f"all {raters}"
    if counts["exhausted"]:
        n = counts["exhausted"]
        them = "it" if n == 1 else "them"
        out.append(
            Blocker(
                reason="raters_exhausted",
                items=n,
                message=(
                    f"{_plural(n, 'item needs', 'items need')} a vote from a rater who has not "
                    f"judged {them} yet, but {everyone} already "
                    f"{'has' if n_raters == 1 else 'have'} (judged or skipped {them})."
                ),
                action=action(n, counts["exhausted_split"]),
            )
        )
    if counts["short"]:
        n = counts["short"]
        out.append(
            Blocker(
                reason="raters_short",
                items=n,
                message=(
                    f"{_plural(n, 'item needs', 'items need')} more votes than the assigned "
                    f"raters who have not judged {'it' if n == 1 else 'them'} yet can give "
                    f"({raters.replace('assigned ', '')} assigned)."
                ),
                action=action(n, counts["short_split"]),
            )
        )
    return out


# --- the rater's blinded view ---------------------------------------------------------------


@dataclass(frozen=True)
class BlindPair:
    """Everything a rater may see of an assignment. Slot 1 is shown left, slot 2 right.

    The field list is the blinding allow-list: no system, model name, output id, score or vote.
    """

    assignment_id: int
    study: UUID  # the study's opaque public id, never its slug
    title: str
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
        study=pair.study_public_id,
        title=pair.study_title or NEUTRAL_RATER_TITLE,
        instructions=pair.instructions,
        prompt=pair.prompt,
        slot_1=base_text if base_left else tuned_text,
        slot_2=tuned_text if base_left else base_text,
        leased_until=pair.leased_until,
    )


# --- exports --------------------------------------------------------------------------------

# Slots are named the way raters saw them ("Response 1" / "Response 2"), not by where a wide
# screen happens to lay them out; `preferred` and the two `*_system` columns keep the server's
# truth (researchers may see systems).
JUDGMENT_EXPORT_FIELDS = (
    "item_id",
    "rater",
    "participant_id",  # a crowd participant's platform id (payment reconciliation); else ""
    "preferred",
    "choice",
    "response_1_system",
    "response_2_system",
    "time_ms",
    "flagged_fast",
    "is_gold",
    "rationale",
    "created_at",
)
EXPORTED_CHOICES = {
    Choice.LEFT: "response_1",
    Choice.RIGHT: "response_2",
    Choice.TIE: "tie",
    Choice.BOTH_BAD: "both_bad",
}
OTHER_SYSTEM = {System.BASE: System.TUNED, System.TUNED: System.BASE}


def judgment_export_rows(*, study: Study, chunk_size: int = 2_000) -> Iterator[dict[str, Any]]:
    """One row per judgment, streamed in id order (constant memory on large studies)."""
    participant = StudyRater.objects.filter(study=study, rater_id=OuterRef("rater_id")).values(
        "participant_id"
    )[:1]
    rows = (
        Judgment.objects.filter(item__study=study)
        .annotate(participant_id=Coalesce(Subquery(participant), Value("")))
        .order_by("id")
        .values_list(
            "item__external_id",
            "rater__username",
            "participant_id",
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
    for (
        item_id,
        rater,
        participant_id,
        preferred,
        choice,
        slot_1,
        time_ms,
        flagged_fast,
        is_gold,
        rationale,
        created_at,
    ) in rows.iterator(chunk_size=chunk_size):
        yield {
            "item_id": item_id,
            "rater": rater,
            "participant_id": participant_id,
            "preferred": preferred,
            "choice": EXPORTED_CHOICES[choice],
            "response_1_system": slot_1,
            "response_2_system": OTHER_SYSTEM[slot_1],
            "time_ms": time_ms,
            "flagged_fast": flagged_fast,
            "is_gold": is_gold,
            "rationale": rationale,
            "created_at": created_at.isoformat(),
        }


def audit_trail(*, study: Study, limit: int = 500) -> list[AuditEvent]:
    """A study's latest `limit` audit events, oldest first (found by the slug each event
    keeps, so the trail of a deleted study is found too)."""
    events = AuditEvent.objects.filter(study_slug=study.slug).select_related("actor")
    return list(reversed(events.order_by("-id")[:limit]))


# --- who rates a study: members, invites, crowd links ---------------------------------------


def invite_state(invite: StudyInvite, now: datetime) -> str:
    """pending, accepted, revoked or expired (in that precedence)."""
    if invite.accepted_at is not None:
        return "accepted"
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at <= now:
        return "expired"
    return "pending"


@dataclass(frozen=True)
class StudyMemberRow:
    """A rater of the study as its researchers see them (removed ones too: their judgments
    stay)."""

    username: str
    via: str  # "crowd link" | "invite or assignment"
    participant_id: str
    crowd_link_id: int | None
    added_at: datetime
    removed_at: datetime | None
    judged: int
    open_pairs: int


def study_member_rows(*, study: Study) -> list[StudyMemberRow]:
    """The study's raters, active first, in two queries."""
    now = timezone.now()
    counts = {
        row["rater_id"]: row
        for row in Assignment.objects.filter(item__study=study)
        .values("rater_id")
        .annotate(
            judged=Count("pk", filter=Q(state=AssignmentState.JUDGED)),
            open_pairs=Count("pk", filter=Q(state=AssignmentState.LEASED, leased_until__gt=now)),
        )
    }
    memberships = (
        StudyRater.objects.filter(study=study)
        .select_related("rater")
        .order_by(F("removed_at").asc(nulls_first=True), "rater__username")
    )
    return [
        StudyMemberRow(
            username=m.rater.get_username(),
            via="crowd link" if m.crowd_link_id else "invite or assignment",
            participant_id=m.participant_id,
            crowd_link_id=m.crowd_link_id,
            added_at=m.added_at,
            removed_at=m.removed_at,
            judged=counts.get(m.rater_id, {}).get("judged", 0),
            open_pairs=counts.get(m.rater_id, {}).get("open_pairs", 0),
        )
        for m in memberships
    ]


@dataclass(frozen=True)
class InviteRow:
    id: int
    username: str  # the name the invite creates, or "" (the person chooses)
    state: str  # pending | accepted | expired | revoked
    created_by: str
    created_at: datetime
    expires_at: datetime
    accepted_by: str
    accepted_at: datetime | None
    revoked_by: str
    revoked_at: datetime | None


def study_invite_rows(*, study: Study, limit: int = 500) -> list[InviteRow]:
    """The study's latest invites with their state, newest first (one query)."""
    now = timezone.now()
    invites = StudyInvite.objects.filter(study=study).select_related(
        "created_by", "accepted_by", "revoked_by"
    )[:limit]

    def name(user) -> str:
        return user.get_username() if user is not None else ""

    return [
        InviteRow(
            id=invite.pk,
            username=invite.username,
            state=invite_state(invite, now),
            created_by=name(invite.created_by),
            created_at=invite.created_at,
            expires_at=invite.expires_at,
            accepted_by=name(invite.accepted_by),
            accepted_at=invite.accepted_at,
            revoked_by=name(invite.revoked_by),
            revoked_at=invite.revoked_at,
        )
        for invite in invites
    ]


def study_crowd_links(*, study: Study) -> QuerySet[CrowdLink]:
    """The study's crowd links, newest first, each with its participants (`participants`) and
    their judgments (`judgments`)."""
    judgments = (
        Judgment.objects.filter(
            item__study_id=OuterRef("study_id"),
            rater__study_memberships__crowd_link_id=OuterRef("pk"),
        )
        .order_by()
        .values("item__study_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    # Explicit order: a GROUP BY query leaves out Meta.ordering.
    return (
        CrowdLink.objects.filter(study=study)
        .annotate(
            participants=Count("memberships", distinct=True),
            judgments=Coalesce(Subquery(judgments), Value(0)),
        )
        .order_by("-created_at", "-id")
    )


def invite_by_token(*, token_hash: str) -> StudyInvite:
    """An invite by its token's hash, with its study. Raises NotFoundError."""
    invite = StudyInvite.objects.select_related("study").filter(token_hash=token_hash).first()
    if invite is None:
        raise NotFoundError("this invite link is not valid")
    return invite


def crowd_link_by_token(*, token: str) -> CrowdLink:
    """A crowd link by its token, with its study. Raises NotFoundError."""
    link = CrowdLink.objects.select_related("study").filter(token=token).first()
    if link is None:
        raise NotFoundError("this study link is not valid")
    return link


def crowd_membership_of(user: AbstractBaseUser) -> StudyRater | None:
    """The crowd membership of a participant's account (None for any other account)."""
    if not user.is_authenticated:
        return None
    return StudyRater.objects.filter(rater_id=user.pk, crowd_link__isnull=False).first()
