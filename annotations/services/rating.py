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
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from annotations import queue_sql
from annotations.blinding import strip_prefixes_from
from annotations.errors import (
    RATER_REMOVED_MESSAGE,
    AlreadyJudgedError,
    AssignmentSkippedError,
    ConflictError,
    DomainValidationError,
    IdempotencyKeyReusedError,
    LeaseLostError,
    NotFoundError,
    ParticipantDoneError,
    RaterRemovedError,
    StudyNotOpenError,
    WithdrawRefusedError,
)
from annotations.models import (
    Assignment,
    AssignmentState,
    Choice,
    Item,
    Judgment,
    Preference,
    Study,
    StudyRater,
    StudyStatus,
    System,
)
from annotations.queue_rules import (
    WITHDRAW_SECONDS,
    flagged_fast,
    has_room,
    holds_a_place_q,
    item_capacity,
    min_reading_ms,
)
from annotations.services.studies import ORDER_MODULUS, audit_record, evidence_changed_notify

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
    "choice_label",
    "expired_lease_can_count",
    "judgment_submit",
    "judgment_withdraw",
    "lease_from_pool",
    "lease_retake_own",
    "membership_check",
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
    study_public_id: UUID
    study_title: str
    instructions: str
    prompt: str
    base_text: str
    tuned_text: str
    # The study's display normalisation, applied to both texts in selectors.blind_pair_from_lease.
    strip_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _RaterStudy:
    id: int
    public_id: UUID
    title: str
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
    *,
    rater: AbstractBaseUser,
    slug: str | None = None,
    public_id: UUID | None = None,
    exclude_ids: Iterable[int] = (),
) -> LeasedPair | None:
    """Leases the rater's next pair in the study (by `slug`, or by `public_id` as the rating
    page names it); None when nothing is left for them.

    A live lease the rater already holds (and did not list in `exclude_ids`) is returned first,
    with its lease renewed, so a retried or reloaded request never strands a lease. A crowd
    participant gets None once their judgments plus live leases reach their link's cap. Raises
    NotFoundError when the rater is not in the study, RaterRemovedError when they were removed
    from it, StudyNotOpenError when it is not open, ConflictError when the rater already holds
    the most leases allowed.
    """
    if (slug is None) == (public_id is None):
        raise DomainValidationError("name the study by slug or by public id")
    now = timezone.now()
    excluded = sorted({int(i) for i in exclude_ids})
    row = queue_sql.rater_study_read(
        slug=slug,
        public_id=public_id,
        rater_id=rater.pk,
        now=now,
        exclude_ids=excluded,
        memo_since=now - timedelta(seconds=QUEUE_MEMO_SECONDS),
    )
    if row is None:
        raise NotFoundError("no such study assigned to you")
    if row.removed:
        raise RaterRemovedError()
    if row.status != StudyStatus.OPEN:
        raise StudyNotOpenError("this study is closed for rating")
    study = _RaterStudy(
        id=row.study_id,
        public_id=UUID(str(row.public_id)),
        title=row.rater_title,
        overlap=row.overlap,
        lease=timedelta(minutes=row.lease_minutes or settings.LEASE_MINUTES),
        instructions=row.instructions,
        order_multiplier=row.order_multiplier,
        order_offset=row.order_offset,
        membership_id=row.membership_id,
        memo=tuple(int(i) for i in row.memo.split(",") if i),
        strip_prefixes=strip_prefixes_from(row.display_strip_prefixes),
    )
    if row.resume_id is not None:
        leased_until = now + study.lease
        queue_sql.lease_extend(assignment_id=row.resume_id, leased_until=leased_until, now=now)
        texts = queue_sql.leased_pair_read(assignment_id=row.resume_id)
        return LeasedPair(
            row.resume_id, texts.item_id, texts.left_system, leased_until, study.public_id,
            study.title, study.instructions, texts.prompt, texts.base_text, texts.tuned_text,
            study.strip_prefixes,
        )  # fmt: skip
    if row.item_cap is not None and row.judged + row.leases_held >= row.item_cap:
        # The participant's cap counts the pairs they hold too, so a prefetched pair never
        # takes them past it.
        return None
    if row.leases_held >= settings.MAX_LEASES_PER_RATER:
        raise ConflictError(
            f"you already hold {row.leases_held} pairs in this study; judge or skip one first"
        )
    pools = [True, False] if wants_gold(row.gold_rate) else [False, True]
    if row.gold_rate <= 0:
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
        item_id = picked.item_id
        capacity = item_capacity(
            overlap=study.overlap, extra_votes=picked.extra_votes, is_gold=gold
        )
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
            assignment_id, item_id, left_system, leased_until, study.public_id, study.title,
            study.instructions, picked.prompt, picked.base_text, picked.tuned_text,
            study.strip_prefixes,
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
        votes=Count("pk", filter=holds_a_place_q(now=now)),
        mine=Max("pk", filter=Q(rater=rater, state=AssignmentState.LEASED)),
    )
    if held["mine"] is None or not has_room(places_held=held["votes"], capacity=capacity):
        return None
    existing = Assignment.objects.get(pk=held["mine"])
    existing.leased_until = now + lease
    existing.save(update_fields=["leased_until", "updated_at"])
    return existing.pk, existing.left_system, existing.leased_until


def assignment_next(
    *, study: Study, rater: AbstractBaseUser, exclude_ids: Iterable[int] = ()
) -> Assignment | None:
    """`pair_next` for callers that want the Assignment row (CLI, tests, server pages)."""
    pair = pair_next(rater=rater, slug=study.slug, exclude_ids=exclude_ids)
    if pair is None:
        return None
    return Assignment.objects.select_related("item__study").get(pk=pair.assignment_id)


def membership_check(*, study_id: int, rater: AbstractBaseUser) -> None:
    """Raises RaterRemovedError unless the rater is (still) in the study."""
    active = StudyRater.objects.filter(
        study_id=study_id, rater_id=rater.pk, removed_at__isnull=True
    ).exists()
    if not active:
        raise RaterRemovedError()


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
    membership_check(study_id=study.pk, rater=rater)
    now = timezone.now()
    if assignment.leased_until <= now and not expired_lease_can_count(
        assignment_id=assignment.pk,
        item_id=assignment.item_id,
        capacity=item_capacity(
            overlap=study.overlap,
            extra_votes=assignment.item.extra_votes,
            is_gold=assignment.item.is_gold,
        ),
        now=now,
    ):
        raise LeaseLostError(LEASE_LOST_MESSAGE)
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
    membership_check(study_id=assignment.item.study_id, rater=rater)
    assignment.state = AssignmentState.SKIPPED
    assignment.save(update_fields=["state", "updated_at"])
    return assignment


LEASE_LOST_MESSAGE = (
    "your time on this pair ran out and other raters completed it meanwhile; "
    "it was not saved and does not count"
)


def expired_lease_can_count(
    *, assignment_id: int, item_id: int, capacity: int | None, now: datetime
) -> bool:
    """Whether an expired lease can still turn into a vote without pushing its item past its
    capacity (the places others hold now, this assignment aside). Run under the item's lock."""
    if capacity is None:
        return True
    others = queue_sql.places_held_by_others(item_id=item_id, assignment_id=assignment_id, now=now)
    return has_room(places_held=others, capacity=capacity)


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


def choice_label(choice: str) -> str:
    """A stored choice as the rater API names it ("1", "2", "tie", "both_bad")."""
    return {Choice.LEFT: "1", Choice.RIGHT: "2"}.get(choice, choice)


IDEMPOTENCY_KEY_MAX = 100


@transaction.atomic
def judgment_submit(
    *,
    assignment_id: int,
    rater: AbstractBaseUser,
    choice: str,
    rationale: str = "",
    time_ms: int | None = None,
    idempotency_key: str | None = None,
) -> Judgment:
    """Records the rater's verdict on a leased pair, resolving slots to systems server-side.

    `idempotency_key` (the client's `Idempotency-Key`, unique per rater): a retry with the key
    of a stored judgment and the same choice returns that judgment unchanged (its
    `replayed` attribute is True), so a lost response never becomes a conflict or a second
    vote. Judgments faster than the study's minimum reading time are stored flagged, never
    refused.

    Raises DomainValidationError for an unknown choice or a bad key, NotFoundError for someone
    else's assignment, IdempotencyKeyReusedError when the key's judgment holds another
    choice, AlreadyJudgedError when the pair holds the rater's judgment already (the first
    counts), AssignmentSkippedError, RaterRemovedError (removed from the study),
    StudyNotOpenError, ParticipantDoneError (a crowd participant at their cap), and
    LeaseLostError when an expired lease's item has meanwhile been completed by others.
    """
    normalised = CHOICE_ALIASES.get(str(choice).strip().lower())
    if normalised is None:
        raise DomainValidationError(
            "choice must be one of '1', '2', 'tie', 'both_bad'", errors={"choice": ["invalid"]}
        )
    if time_ms is not None and (time_ms < 0 or time_ms > 86_400_000):
        raise DomainValidationError(
            "time_ms must be between 0 and 86400000", errors={"time_ms": ["out of range"]}
        )
    if idempotency_key is not None and not (0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX):
        raise DomainValidationError(
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters",
            errors={"idempotency_key": ["invalid"]},
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
    if row.state == AssignmentState.JUDGED:
        # Before the study's state: a retry of a stored judgment is answered even after the
        # study closed, since it was saved while it was open.
        return _judgment_replay(
            assignment_id=assignment_id, choice=normalised, idempotency_key=idempotency_key
        )
    if row.state == AssignmentState.SKIPPED:
        raise AssignmentSkippedError("you skipped this pair; it was not saved")
    if not row.member:
        raise RaterRemovedError(RATER_REMOVED_MESSAGE + "; this pair was not saved")
    if row.status != StudyStatus.OPEN:
        raise StudyNotOpenError("the study was closed for rating; this pair was not saved")
    judged = (
        queue_sql.crowd_judged_lock(study_id=row.study_id, rater_id=rater.pk)
        if row.item_cap is not None
        else 0
    )
    if row.item_cap is not None and judged >= row.item_cap:
        raise ParticipantDoneError(
            f"you have judged the {row.item_cap} pairs this study asks of you; this pair was "
            "not saved"
        )
    capacity = item_capacity(overlap=row.overlap, extra_votes=row.extra_votes, is_gold=row.is_gold)
    if not row.lease_live and not expired_lease_can_count(
        assignment_id=assignment_id, item_id=row.item_id, capacity=capacity, now=now
    ):
        raise LeaseLostError(LEASE_LOST_MESSAGE)
    threshold = min_reading_ms(min_time_ms=row.min_time_ms, text_chars=row.text_chars)
    values = {
        "assignment_id": assignment_id,
        "item_id": row.item_id,
        "choice": normalised,
        "preferred": preferred_for(normalised, row.left_system),
        "left_system": row.left_system,
        "rationale": rationale.strip()[:10_000],
        "time_ms": time_ms,
        "flagged_fast": flagged_fast(time_ms=time_ms, threshold_ms=threshold),
        "idempotency_key": idempotency_key,
    }
    try:
        # No savepoint: on a clash the whole submission is rolled back anyway (ConflictError
        # leaves this function's transaction), which spares two round trips per judgment.
        with transaction.atomic(savepoint=False):
            judgment_id = queue_sql.judgment_insert(rater_id=rater.pk, now=now, **values)
    except IntegrityError as exc:
        raise ConflictError(
            "this judgment clashes with one you saved before (the same item, or an "
            "Idempotency-Key used for another pair); the first one counts"
        ) from exc
    if capacity is not None:
        overlap_extend_if_split(item_id=row.item_id, wanted=capacity, max_overlap=row.max_overlap)
    evidence_changed_notify(row.study_id)
    judgment = Judgment(pk=judgment_id, rater=rater, created_at=now, **values)
    judgment._state.adding = False  # noqa: SLF001 - the row exists: a save() must UPDATE it
    judgment._state.db = DEFAULT_DB_ALIAS  # noqa: SLF001
    judgment.replayed = False
    return judgment


def _judgment_replay(*, assignment_id: int, choice: str, idempotency_key: str | None) -> Judgment:
    """The answer to a submission on a pair the rater already judged: the stored judgment when
    the key and choice match (a retry), else the conflict that says why nothing changed."""
    stored = Judgment.objects.get(assignment_id=assignment_id)
    if idempotency_key is not None and stored.idempotency_key == idempotency_key:
        if stored.choice != choice:
            raise IdempotencyKeyReusedError(
                f"this pair was already saved as {choice_label(stored.choice)!r}; the changed "
                "choice was not saved (press u within a minute of saving to undo and choose "
                "again)",
                errors={"saved_choice": choice_label(stored.choice)},
            )
        stored.replayed = True
        return stored
    raise AlreadyJudgedError(
        f"you already judged this pair ({choice_label(stored.choice)!r}); the first judgment "
        "counts",
        errors={"saved_choice": choice_label(stored.choice)},
    )


@transaction.atomic
def judgment_withdraw(*, assignment_id: int, rater: AbstractBaseUser) -> Assignment:
    """Takes back the rater's judgment of a pair within WITHDRAW_SECONDS of saving it (undo a
    misclick) and gives the pair back to them as a live lease, so it keeps its place.

    The judgment row is removed, so no reader (statistics, exports, progress, the queue's
    counts) needs a filter for it; its full content is kept in the audit log (entity
    "judgment", action "withdrawn"). Raises NotFoundError for someone else's assignment,
    WithdrawRefusedError when there is no judgment to take back, it is too old, or the study
    is no longer open.
    """
    assignment = assignment_for_rater(assignment_id=assignment_id, rater=rater)
    Item.objects.select_for_update().filter(pk=assignment.item_id).first()
    assignment = (
        Assignment.objects.select_for_update().select_related("item__study").get(pk=assignment.pk)
    )
    study = assignment.item.study
    judgment = Judgment.objects.filter(assignment_id=assignment.pk).first()
    if judgment is None or assignment.state != AssignmentState.JUDGED:
        raise WithdrawRefusedError("this pair holds no judgment of yours to undo")
    membership_check(study_id=study.pk, rater=rater)
    if study.status != StudyStatus.OPEN:
        raise WithdrawRefusedError("the study was closed for rating; judgments stay as saved")
    now = timezone.now()
    if now - judgment.created_at > timedelta(seconds=WITHDRAW_SECONDS):
        raise WithdrawRefusedError(
            f"a judgment can be undone only within {WITHDRAW_SECONDS} s of saving it"
        )
    audit_record(
        entity="judgment",
        entity_id=judgment.pk,
        action="withdrawn",
        actor=rater,
        study=study,
        before=judgment.preferred,
        details={
            "assignment_id": assignment.pk,
            "item_id": judgment.item_id,
            "item_external_id": assignment.item.external_id,
            "rater_id": judgment.rater_id,
            "choice": judgment.choice,
            "preferred": judgment.preferred,
            "left_system": judgment.left_system,
            "rationale": judgment.rationale,
            "time_ms": judgment.time_ms,
            "flagged_fast": judgment.flagged_fast,
            "idempotency_key": judgment.idempotency_key,
            "created_at": judgment.created_at.isoformat(),
            "withdrawn_at": now.isoformat(),
        },
    )
    judgment.delete()
    assignment.state = AssignmentState.LEASED
    assignment.leased_until = now + timedelta(minutes=study.lease_minutes or settings.LEASE_MINUTES)
    assignment.save(update_fields=["state", "leased_until", "updated_at"])
    evidence_changed_notify(study.pk)
    return assignment


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
