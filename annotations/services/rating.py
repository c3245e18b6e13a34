"""Writes: the rating queue (next pair, leases, skips) and judgments.

Locking: every write that changes how many votes an item holds (a new lease, a judgment) locks
the item row first and the assignment row second, always in that order, so concurrent raters
never deadlock and never push an item past its overlap. On PostgreSQL the queue picks items with
`FOR UPDATE SKIP LOCKED`; on SQLite `IMMEDIATE` transactions serialise writers instead.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from annotations import queue_sql
from annotations.blinding import strip_prefixes_from
from annotations.errors import (
    ConflictError,
    DomainValidationError,
    NotFoundError,
)
from annotations.models import (
    Assignment,
    AssignmentState,
    Choice,
    Item,
    Preference,
    Study,
    StudyStatus,
    System,
)
from annotations.selectors import live_or_judged_q
from annotations.services.studies import ORDER_MODULUS, evidence_changed_notify

# --- the rating queue -----------------------------------------------------------------------
# The next-pair and judgment paths run on every rater request; their statements live in
# `annotations.queue_sql` (plain SQL, see there why), the decisions stay here.


__all__ = [
    "CHOICE_ALIASES",
    "LeasedPair",
    "QUEUE_MEMO_SECONDS",
    "QUEUE_MEMO_SIZE",
    "QUEUE_WINDOWS",
    "assignment_for_rater",
    "assignment_next",
    "assignment_renew",
    "assignment_skip",
    "draw_left_system",
    "item_has_room_for",
    "judgment_submit",
    "lease_from_pool",
    "lease_retake_own",
    "overlap_extend_if_split",
    "pair_next",
    "preferred_for",
    "queue_memo_rebuild",
    "votes_split",
    "wants_gold",
]


def draw_left_system() -> str:
    # `secrets`, not `random`: nobody may predict or reconstruct a rater's sides.
    return System.BASE if secrets.randbelow(2) == 0 else System.TUNED


def wants_gold(gold_rate: float) -> bool:
    return gold_rate > 0 and secrets.randbelow(1_000_000) < int(gold_rate * 1_000_000)


# The queue first looks at a window of the rater's next items in their order (pool, hold and
# own-assignment filters only: cheap), and counts votes only for the items in that window; the
# first window nearly always holds a free item. Counting votes for every item of the study on
# every request made the queue cost grow with the study (25 ms of PostgreSQL CPU a request at
# 5,000 items, against 3 ms now).
# Only when every item of a window is full or locked does it look further, then everywhere.
QUEUE_WINDOWS = (64, 1024, None)
# Even a window orders the whole pool by the rater's permutation, a cost that grows with the
# study. So the queue keeps, per rater, a memo of their next items with room (`StudyRater.
# queue_window`) and picks among those first; the pick re-checks every condition, so a stale
# memo can only send the rater to a slightly later item, never to a wrong one. It is rebuilt
# when none of its items is free any more, or after QUEUE_MEMO_SECONDS (new items, changed
# priorities).
QUEUE_MEMO_SIZE = 64
QUEUE_MEMO_SECONDS = 60


@dataclass(frozen=True)
class LeasedPair:
    """A lease the queue handed to a rater, with what the rater's view of it needs."""

    assignment_id: int
    item_id: int
    left_system: str
    leased_until: Any
    study_slug: str
    instructions: str
    prompt: str
    base_text: str
    tuned_text: str
    # The study's display normalisation, applied to both texts in selectors.blind_pair_from_lease.
    strip_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _RaterStudy:
    id: int
    slug: str
    overlap: int
    lease: timedelta
    instructions: str
    order_multiplier: int
    order_offset: int
    membership_id: int
    memo: tuple[int, ...]
    strip_prefixes: tuple[str, ...] = ()


@transaction.atomic
def pair_next(
    *, slug: str, rater: AbstractBaseUser, exclude_ids: Iterable[int] = ()
) -> LeasedPair | None:
    """Leases the rater's next pair in the study `slug`; None when nothing is left for them.

    A live lease the rater already holds (and did not list in `exclude_ids`) is returned first,
    with its lease renewed, so a retried or reloaded request never strands a lease. Raises
    NotFoundError when the rater is not in the study, ConflictError when the study is not open
    or the rater already holds the most leases allowed.
    """
    now = timezone.now()
    excluded = sorted({int(i) for i in exclude_ids})
    row = queue_sql.rater_study_read(
        slug=slug,
        rater_id=rater.pk,
        now=now,
        exclude_ids=excluded,
        memo_since=now - timedelta(seconds=QUEUE_MEMO_SECONDS),
    )
    if row is None:
        raise NotFoundError(f"no study {slug!r} assigned to you")
    study_id, status, overlap, gold_rate, lease_minutes, instructions = row[:6]
    multiplier, offset, held, resume_id, membership_id, memo, prefixes = row[6:]
    if status != StudyStatus.OPEN:
        raise ConflictError(f"study {slug!r} is {status}, not open")
    study = _RaterStudy(
        id=study_id,
        slug=slug,
        overlap=overlap,
        lease=timedelta(minutes=lease_minutes or settings.LEASE_MINUTES),
        instructions=instructions,
        order_multiplier=multiplier,
        order_offset=offset,
        membership_id=membership_id,
        memo=tuple(int(i) for i in memo.split(",") if i),
        strip_prefixes=strip_prefixes_from(prefixes),
    )
    if resume_id is not None:
        leased_until = now + study.lease
        queue_sql.lease_extend(assignment_id=resume_id, leased_until=leased_until, now=now)
        item_id, left_system, prompt, base_text, tuned_text = queue_sql.leased_pair_read(
            assignment_id=resume_id
        )
        return LeasedPair(
            resume_id, item_id, left_system, leased_until, slug, instructions, prompt,
            base_text, tuned_text, study.strip_prefixes,
        )  # fmt: skip
    if held >= settings.MAX_LEASES_PER_RATER:
        raise ConflictError(f"you already hold {held} pairs in this study; judge or skip one first")
    pools = [True, False] if wants_gold(gold_rate) else [False, True]
    if gold_rate <= 0:
        pools = [False]
    for gold in pools:
        pair = lease_from_pool(study=study, rater=rater, gold=gold)
        if pair is not None:
            return pair
    return None


def lease_from_pool(
    *, study: _RaterStudy, rater: AbstractBaseUser, gold: bool
) -> LeasedPair | None:
    skipped: list[int] = []
    # Gold items are few and every rater meets each once: that pool keeps no memo.
    memo = [] if gold else list(study.memo)
    memo_rebuilt = gold
    for _attempt in range(20):
        pool = {
            "study_id": study.id,
            "rater_id": rater.pk,
            "gold": gold,
            "order_multiplier": study.order_multiplier,
            "order_offset": study.order_offset,
            "modulus": ORDER_MODULUS,
            "overlap": study.overlap,
            "now": timezone.now(),
            "skipped": skipped,
        }
        picked = None
        if memo:
            picked = queue_sql.candidate_lock(among=memo, **pool)
        if picked is None and not memo_rebuilt:
            memo_rebuilt = True
            memo = queue_memo_rebuild(study=study, pool=pool)
            if memo:
                picked = queue_sql.candidate_lock(among=memo, **pool)
        if picked is None:
            # Everything the memo holds is full or locked by other raters: look everywhere.
            for window in QUEUE_WINDOWS:
                picked = queue_sql.candidate_lock(window=window, **pool)
                if picked is not None:
                    break
        if picked is None:
            return None
        item_id, extra_votes, prompt, base_text, tuned_text = picked
        capacity = None if gold else study.overlap + extra_votes
        left_system = draw_left_system()
        leased_until = timezone.now() + study.lease
        # This transaction holds the item's lock now; the insert counts the votes again in a
        # new statement, so a vote committed since the pick read its snapshot is seen.
        assignment_id = queue_sql.lease_insert_if_room(
            item_id=item_id,
            rater_id=rater.pk,
            left_system=left_system,
            leased_until=leased_until,
            now=timezone.now(),
            capacity=capacity,
        )
        if assignment_id is None:
            # Full after all, or the rater's own expired lease is on the item (rare paths).
            retaken = lease_retake_own(
                item_id=item_id, rater=rater, capacity=capacity, lease=study.lease
            )
            if retaken is None:
                skipped.append(item_id)
                memo = [i for i in memo if i != item_id]
                continue
            assignment_id, left_system, leased_until = retaken
        return LeasedPair(
            assignment_id, item_id, left_system, leased_until, study.slug, study.instructions,
            prompt, base_text, tuned_text, study.strip_prefixes,
        )  # fmt: skip
    return None


def queue_memo_rebuild(*, study: _RaterStudy, pool: dict[str, Any]) -> list[int]:
    """The rater's next QUEUE_MEMO_SIZE items with room, in their order, stored as their memo."""
    ids: list[int] = []
    for window in QUEUE_WINDOWS:
        ids = queue_sql.candidate_ids(window=window, limit=QUEUE_MEMO_SIZE, **pool)
        if ids:
            break
    queue_sql.queue_memo_store(membership_id=study.membership_id, item_ids=ids, now=pool["now"])
    return ids


def lease_retake_own(
    *, item_id: int, rater: AbstractBaseUser, capacity: int | None, lease: timedelta
) -> tuple[int, str, Any] | None:
    """The rater's own expired lease on a locked item, taken up again with its sides unchanged
    when the item still has room; None when it has none (or no such lease exists)."""
    now = timezone.now()
    held = Assignment.objects.filter(item_id=item_id).aggregate(
        votes=Count("pk", filter=live_or_judged_q(now=now)),
        mine=Max("pk", filter=Q(rater=rater, state=AssignmentState.LEASED)),
    )
    if held["mine"] is None or (capacity is not None and held["votes"] >= capacity):
        return None
    existing = Assignment.objects.get(pk=held["mine"])
    existing.leased_until = now + lease
    existing.save(update_fields=["leased_until", "updated_at"])
    return existing.pk, existing.left_system, existing.leased_until


def assignment_next(
    *, study: Study, rater: AbstractBaseUser, exclude_ids: Iterable[int] = ()
) -> Assignment | None:
    """`pair_next` for callers that want the Assignment row (CLI, tests, server pages)."""
    pair = pair_next(slug=study.slug, rater=rater, exclude_ids=exclude_ids)
    if pair is None:
        return None
    return Assignment.objects.select_related("item__study").get(pk=pair.assignment_id)


def assignment_for_rater(*, assignment_id: int, rater: AbstractBaseUser) -> Assignment:
    assignment = (
        Assignment.objects.select_related("item__study")
        .filter(pk=assignment_id, rater=rater)
        .first()
    )
    if assignment is None:
        # Same answer for "not yours" and "does not exist": ids reveal nothing.
        raise NotFoundError("no such assignment")
    return assignment


@transaction.atomic
def assignment_renew(*, assignment_id: int, rater: AbstractBaseUser) -> Assignment:
    """Extends a live lease while the rater's page is open. Raises ConflictError if the lease is
    no longer held (judged, skipped, or expired and taken by the queue)."""
    assignment = assignment_for_rater(assignment_id=assignment_id, rater=rater)
    Item.objects.select_for_update().filter(pk=assignment.item_id).first()
    assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
    if assignment.state != AssignmentState.LEASED:
        raise ConflictError(f"assignment is {assignment.state}")
    study = assignment.item.study
    if assignment.leased_until <= timezone.now() and not item_has_room_for(assignment):
        raise ConflictError("the lease expired and the item has been completed by others")
    assignment.leased_until = timezone.now() + timedelta(
        minutes=study.lease_minutes or settings.LEASE_MINUTES
    )
    assignment.save(update_fields=["leased_until", "updated_at"])
    return assignment


@transaction.atomic
def assignment_skip(*, assignment_id: int, rater: AbstractBaseUser) -> Assignment:
    """Gives an item back without judging it; the rater will not be offered it again."""
    assignment = assignment_for_rater(assignment_id=assignment_id, rater=rater)
    Item.objects.select_for_update().filter(pk=assignment.item_id).first()
    assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
    if assignment.state == AssignmentState.JUDGED:
        raise ConflictError("assignment is already judged")
    if assignment.state == AssignmentState.SKIPPED:
        return assignment
    assignment.state = AssignmentState.SKIPPED
    assignment.save(update_fields=["state", "updated_at"])
    return assignment


def item_has_room_for(assignment: Assignment) -> bool:
    """Whether an expired lease can still turn into a vote without exceeding the item's k."""
    item = assignment.item
    if item.is_gold:
        return True
    others = queue_sql.places_held_by_others(
        item_id=item.pk, assignment_id=assignment.pk, now=timezone.now()
    )
    return others < item.study.overlap + item.extra_votes


CHOICE_ALIASES = {
    "1": Choice.LEFT,
    "2": Choice.RIGHT,
    "left": Choice.LEFT,
    "right": Choice.RIGHT,
    "tie": Choice.TIE,
    "both_bad": Choice.BOTH_BAD,
}


def preferred_for(choice: str, left_system: str) -> str:
    right_system = System.TUNED if left_system == System.BASE else System.BASE
    return {
        Choice.LEFT: left_system,
        Choice.RIGHT: right_system,
        Choice.TIE: Preference.TIE,
        Choice.BOTH_BAD: Preference.BOTH_BAD,
    }[choice]


@transaction.atomic
def judgment_submit(
    *,
    assignment_id: int,
    rater: AbstractBaseUser,
    choice: str,
    rationale: str = "",
    time_ms: int | None = None,
):
    """Records the rater's verdict on a leased pair, resolving slots to systems server-side.

    Raises DomainValidationError for an unknown choice, NotFoundError for someone else's
    assignment, ConflictError when it was already judged or skipped (a retry never counts twice)
    or when an expired lease's item has meanwhile been completed by others.
    """
    from annotations.models import Judgment

    normalised = CHOICE_ALIASES.get(str(choice).strip().lower())
    if normalised is None:
        raise DomainValidationError(
            "choice must be one of '1', '2', 'tie', 'both_bad'", errors={"choice": ["invalid"]}
        )
    if time_ms is not None and (time_ms < 0 or time_ms > 86_400_000):
        raise DomainValidationError(
            "time_ms must be between 0 and 86400000", errors={"time_ms": ["out of range"]}
        )
    now = timezone.now()
    # One statement finds the rater's own assignment and locks the item row, then the
    # assignment row (the lock order of every write that changes an item's votes).
    row = queue_sql.assignment_lock_for_judgment(
        assignment_id=assignment_id, rater_id=rater.pk, now=now
    )
    if row is None:
        # Same answer for "not yours" and "does not exist": ids reveal nothing.
        raise NotFoundError("no such assignment")
    state, left_system, lease_live, item_id, is_gold, extra_votes = row[:6]
    study_id, slug, status, overlap, max_overlap, min_time_ms = row[6:]
    if state == AssignmentState.JUDGED:
        raise ConflictError("this pair is already judged; the first judgment counts")
    if state == AssignmentState.SKIPPED:
        raise ConflictError("this pair was skipped")
    if status != StudyStatus.OPEN:
        raise ConflictError(f"study {slug!r} is {status}, not open")
    if not lease_live and not is_gold:
        others = queue_sql.places_held_by_others(
            item_id=item_id, assignment_id=assignment_id, now=now
        )
        if others >= overlap + extra_votes:
            raise ConflictError("the lease expired and the item has been completed by others")
    flagged_fast = bool(time_ms is not None and min_time_ms and time_ms < min_time_ms)
    values = {
        "assignment_id": assignment_id,
        "item_id": item_id,
        "choice": normalised,
        "preferred": preferred_for(normalised, left_system),
        "left_system": left_system,
        "rationale": rationale.strip()[:10_000],
        "time_ms": time_ms,
        "flagged_fast": flagged_fast,
    }
    try:
        # No savepoint: on a clash the whole submission is rolled back anyway (ConflictError
        # leaves this function's transaction), which spares two round trips per judgment.
        with transaction.atomic(savepoint=False):
            judgment_id = queue_sql.judgment_insert(rater_id=rater.pk, now=now, **values)
    except IntegrityError as exc:
        raise ConflictError(
            "this rater already judged this item; the first judgment counts"
        ) from exc
    if not is_gold:
        overlap_extend_if_split(
            item_id=item_id, wanted=overlap + extra_votes, max_overlap=max_overlap
        )
    evidence_changed_notify(study_id)
    judgment = Judgment(pk=judgment_id, rater=rater, created_at=now, **values)
    judgment._state.adding = False  # noqa: SLF001 - the row exists: a save() must UPDATE it
    judgment._state.db = DEFAULT_DB_ALIAS  # noqa: SLF001
    return judgment


def votes_split(counts: dict[str, int]) -> bool:
    """No strict majority among the votes (both-bad counts as a tie)."""
    merged = dict(counts)
    merged[Preference.TIE] = merged.get(Preference.TIE, 0) + merged.pop(Preference.BOTH_BAD, 0)
    total = sum(merged.values())
    return total > 0 and 2 * max(merged.values()) <= total


def overlap_extend_if_split(*, item_id: int, wanted: int, max_overlap: int) -> bool:
    """Adaptive overlap: when a completed item's votes split, queue one more rater for it, up
    to the study's maximum (`wanted` = k plus the item's extra votes so far). Runs under the
    item's row lock (held by `judgment_submit`)."""
    if wanted >= max_overlap:
        return False
    counts = queue_sql.votes_by_preference(item_id=item_id)
    if sum(counts.values()) < wanted or not votes_split(counts):
        return False
    queue_sql.extra_vote_add(item_id=item_id)
    return True
