"""Writes: users, studies, imports, rater membership, the rating queue and judgments.

Locking: every write that changes how many votes an item holds (a new lease, a judgment) locks
the item row first and the assignment row second, always in that order, so concurrent raters
never deadlock and never push an item past its overlap. On PostgreSQL the queue picks items with
`FOR UPDATE SKIP LOCKED`; on SQLite `IMMEDIATE` transactions serialise writers instead.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import Count, Max, Q
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

from annotations import queue_sql, roles
from annotations.errors import (
    ConflictError,
    DomainValidationError,
    NotFoundError,
)
from annotations.importers import ImportIssue, ParsedItem, ParseResult
from annotations.models import (
    SIGN_OFF_STATES,
    STUDY_TRANSITIONS,
    Assignment,
    AssignmentState,
    AuditEvent,
    Choice,
    Item,
    Output,
    Preference,
    Study,
    StudyRater,
    StudyStatus,
    System,
)
from annotations.selectors import live_or_judged_q
from annotations.signals import evidence_changed

User = get_user_model()

# Prime modulus of the per-rater item permutation ((id * a + b) mod P): a bijection on ids
# below P, so each rater walks the items in an order of their own.
ORDER_MODULUS = 2_147_483_647
IMPORT_BATCH_SIZE = 2_000
IMPORT_COPY_BATCH_SIZE = 10_000


def validation_error_from(exc: ValidationError) -> DomainValidationError:
    if hasattr(exc, "message_dict"):
        errors = {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        return DomainValidationError(summary, errors=errors)
    return DomainValidationError("; ".join(exc.messages), errors=list(exc.messages))


# --- audit and study states -----------------------------------------------------------------


def audit_record(
    *,
    entity: str,
    entity_id: str | int,
    action: str,
    actor: AbstractBaseUser | None = None,
    study: Study | None = None,
    before: str = "",
    after: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Appends one audit event (who, what, when)."""
    return AuditEvent.objects.create(
        entity=entity,
        entity_id=str(entity_id),
        action=action,
        study=study,
        before=before,
        after=after,
        actor=actor if actor is not None and actor.is_authenticated else None,
        details=details or {},
    )


def status_transition_check(*, current: str, target: str, allow_sign_off: bool = False) -> None:
    """Raises ConflictError unless `current -> target` is an allowed study move."""
    if current == target:
        return
    if target in SIGN_OFF_STATES and not allow_sign_off:
        raise ConflictError(f"a study becomes {target} only through a release sign-off")
    if target not in STUDY_TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(STUDY_TRANSITIONS.get(current, frozenset()))) or "none"
        raise ConflictError(f"a study cannot move from {current} to {target} (allowed: {allowed})")


@transaction.atomic
def study_transition(
    *,
    study: Study,
    target: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    allow_sign_off: bool = False,
) -> Study:
    """Moves a study to `target` along an allowed transition and records it in the audit log."""
    locked = Study.objects.select_for_update().get(pk=study.pk)
    status_transition_check(current=locked.status, target=target, allow_sign_off=allow_sign_off)
    if locked.status == target:
        return locked
    before = locked.status
    locked.status = target
    locked.save(update_fields=["status", "updated_at"])
    audit_record(
        entity="study",
        entity_id=locked.slug,
        action="status",
        actor=actor,
        study=locked,
        before=before,
        after=target,
        details={"reason": reason} if reason else None,
    )
    return locked


def evidence_changed_notify(study_id: int) -> None:
    """After commit, tells listeners (scoring) that a study's human evidence changed."""
    transaction.on_commit(lambda: evidence_changed.send(sender=Study, study_id=study_id))


# --- users ----------------------------------------------------------------------------------


def roles_ensure() -> None:
    """Creates the role groups (idempotent)."""
    for name in roles.ROLES:
        Group.objects.get_or_create(name=name)


@transaction.atomic
def user_create(
    *, username: str, password: str, role: str, email: str = "", exist_ok: bool = False
) -> AbstractBaseUser:
    """Creates a user in one role. Raises DomainValidationError on a bad role, password or name."""
    if role not in roles.ROLES:
        raise DomainValidationError(f"role must be one of {', '.join(roles.ROLES)}, got {role!r}")
    if not password:
        raise DomainValidationError("password must not be empty")
    roles_ensure()
    existing = User.objects.filter(username=username).first()
    if existing is not None:
        if not exist_ok:
            raise ConflictError(f"user {username!r} already exists")
        user = existing
    else:
        user = User(username=username, email=email)
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as exc:
            raise validation_error_from(exc) from exc
    user.set_password(password)
    user.is_staff = role == roles.ADMIN
    user.save()
    user.groups.add(Group.objects.get(name=role))
    return user


# --- studies --------------------------------------------------------------------------------

STUDY_EDITABLE_FIELDS = (
    "name",
    "task_type",
    "overlap",
    "max_overlap",
    "instructions",
    "status",
    "base_model",
    "tuned_model",
    "gold_rate",
    "min_time_ms",
    "lease_minutes",
    "queue_order",
    "settings",
)


@transaction.atomic
def study_create(
    *,
    slug: str,
    name: str,
    task_type: str,
    overlap: int = 3,
    created_by: AbstractBaseUser | None = None,
    **fields: Any,
) -> Study:
    """Creates a study (draft unless `status` is given). Raises DomainValidationError."""
    unknown = set(fields) - set(STUDY_EDITABLE_FIELDS)
    if unknown:
        raise DomainValidationError(f"unknown study field(s): {', '.join(sorted(unknown))}")
    fields.setdefault("max_overlap", max(overlap, fields.get("max_overlap") or overlap + 2))
    if Study.objects.filter(slug=slug).exists():
        raise ConflictError(
            f"a study with slug {slug!r} already exists", errors={"slug": ["exists"]}
        )
    study = Study(
        slug=slug, name=name, task_type=task_type, overlap=overlap, created_by=created_by, **fields
    )
    try:
        study.full_clean()
    except ValidationError as exc:
        raise validation_error_from(exc) from exc
    if study.status in SIGN_OFF_STATES:
        raise ConflictError(f"a study cannot be created {study.status}")
    study.save()
    audit_record(
        entity="study",
        entity_id=study.slug,
        action="created",
        actor=created_by,
        study=study,
        after=study.status,
    )
    return study


@transaction.atomic
def study_update(*, study: Study, actor: AbstractBaseUser | None = None, **fields: Any) -> Study:
    """Updates the editable fields of a study; a status change must be an allowed transition
    and is audited. Raises DomainValidationError, ConflictError."""
    unknown = set(fields) - set(STUDY_EDITABLE_FIELDS)
    if unknown:
        raise DomainValidationError(f"unknown study field(s): {', '.join(sorted(unknown))}")
    study = Study.objects.select_for_update().get(pk=study.pk)
    target = fields.pop("status", None)
    if target is not None and target != study.status:
        study = study_transition(study=study, target=target, actor=actor)
    for key, value in fields.items():
        setattr(study, key, value)
    try:
        study.full_clean()
    except ValidationError as exc:
        raise validation_error_from(exc) from exc
    study.save()
    return study


@transaction.atomic
def study_delete(*, study: Study) -> None:
    if Study.objects.filter(pk=study.pk, items__judgments__isnull=False).exists():
        raise ConflictError("a study with judgments cannot be deleted; close it instead")
    study.delete()


# --- import ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportSummary:
    items: int
    outputs: int


def external_ids_taken(*, study: Study, ids: Sequence[str]) -> set[str]:
    """Which of `ids` the study already has."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        # One array parameter instead of 5,000 literals per query: a tenth of the time.
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT external_id FROM annotations_item"
                " WHERE study_id = %s AND external_id = ANY(%s)",
                (study.pk, list(ids)),
            )
            return {external_id for (external_id,) in cursor.fetchall()}
    taken: set[str] = set()
    for start in range(0, len(ids), 5_000):
        taken.update(
            Item.objects.filter(
                study=study, external_id__in=ids[start : start + 5_000]
            ).values_list("external_id", flat=True)
        )
    return taken


def items_import(
    *,
    study: Study,
    parsed: ParseResult,
    source: str,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Writes parsed items and both outputs of each, all or nothing.

    Raises DomainValidationError listing `file:line: reason` for every bad line (capped) when the
    parse failed or an id already exists in the study; nothing is written then.
    """
    if not parsed.ok:
        raise DomainValidationError(
            f"{parsed.bad_lines} bad line(s) in {source}; nothing was imported",
            errors=[str(issue) for issue in parsed.issues],
        )
    clash_set = external_ids_taken(study=study, ids=[item.external_id for item in parsed.items])
    if clash_set:
        issues = [
            str(
                ImportIssue(
                    source,
                    item.line,
                    f"id {item.external_id!r} already exists in study {study.slug!r}",
                )
            )
            for item in parsed.items
            if item.external_id in clash_set
        ]
        raise DomainValidationError(
            f"{len(clash_set)} id(s) already exist in study {study.slug!r}; nothing was imported",
            errors=issues[: settings.IMPORT_MAX_ERRORS],
        )
    on_postgres = connections[DEFAULT_DB_ALIAS].vendor == "postgresql"
    write = items_write_copy if on_postgres else items_write_bulk
    written_items = 0
    written_outputs = 0
    with transaction.atomic():
        for items, outputs in write(study=study, parsed=parsed.items):
            written_items += items
            written_outputs += outputs
            if progress is not None:
                progress(items)
    return ImportSummary(items=written_items, outputs=written_outputs)


# How a parsed line becomes an item and its two outputs, for both write paths below.
ITEM_FROM_PARSED: dict[str, Callable[[ParsedItem], Any]] = {
    "external_id": lambda p: p.external_id,
    "prompt": lambda p: p.prompt,
    "reference": lambda p: p.reference,
    "label": lambda p: p.label,
    "task_type": lambda p: p.task_type,
    "metadata": lambda p: p.metadata,
    "priority": lambda p: p.priority,
    "is_gold": lambda p: bool(p.gold_preference),
    "gold_preference": lambda p: p.gold_preference,
}


def output_values(*, study: Study, parsed: ParsedItem) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {
            "system": System.BASE,
            "text": parsed.base,
            "model_name": parsed.base_model or study.base_model,
        },
        {
            "system": System.TUNED,
            "text": parsed.tuned,
            "model_name": parsed.tuned_model or study.tuned_model,
        },
    )


def items_write_bulk(*, study: Study, parsed: Sequence[ParsedItem]) -> Iterator[tuple[int, int]]:
    """Writes items and outputs with `bulk_create`, a batch at a time; yields what each wrote."""
    for start in range(0, len(parsed), IMPORT_BATCH_SIZE):
        chunk = parsed[start : start + IMPORT_BATCH_SIZE]
        items = Item.objects.bulk_create(
            [
                Item(study=study, **{name: get(p) for name, get in ITEM_FROM_PARSED.items()})
                for p in chunk
            ]
        )
        outputs = [
            Output(item=item, **values)
            for item, p in zip(items, chunk, strict=True)
            for values in output_values(study=study, parsed=p)
        ]
        Output.objects.bulk_create(outputs)
        yield len(items), len(outputs)


# Column types psycopg adapts straight from the parsed Python value (str, float, bool, int).
COPY_AS_IS = {
    "CharField",
    "TextField",
    "FloatField",
    "BooleanField",
    "PositiveSmallIntegerField",
    "PositiveIntegerField",
    "IntegerField",
    "BigIntegerField",
    "ForeignKey",
}


class CopyRows:
    """Rows for a COPY into `model`'s table: every concrete column but an auto id. The columns
    named in `varying` take per-row values; every other one takes what `bulk_create` would write
    for `model(**fixed)`: its default (a callable one drawn again for each row, e.g. a uuid4
    key), `auto_now_add`, the fixed foreign key."""

    def __init__(self, model, varying: Iterable[str], **fixed: Any) -> None:
        db = connections[DEFAULT_DB_ALIAS]
        template = model(**fixed)
        fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin)]
        varying = set(varying)
        self.table = db.ops.quote_name(model._meta.db_table)
        self.columns = ", ".join(db.ops.quote_name(f.column) for f in fields)
        self.base = [f.get_db_prep_save(f.pre_save(template, True), db) for f in fields]
        self.slots = []  # (position, attname, adapter or None)
        self.fresh = []  # (position, field): callable defaults, drawn per row
        for position, field in enumerate(fields):
            if field.attname in varying:
                as_is = field.get_internal_type() in COPY_AS_IS
                adapt = None if as_is else (lambda v, f=field: f.get_db_prep_save(v, db))
                self.slots.append((position, field.attname, adapt))
            elif field.has_default() and callable(field.default):
                self.fresh.append((position, field))
        self.db = db

    def row(self, values: dict[str, Any]) -> list[Any]:
        row = list(self.base)
        for position, field in self.fresh:
            row[position] = field.get_db_prep_save(field.get_default(), self.db)
        for position, name, adapt in self.slots:
            value = values[name]
            row[position] = value if adapt is None else adapt(value)
        return row

    def copy(self, cursor, rows: Iterable[dict[str, Any]]) -> None:
        with cursor.copy(f"COPY {self.table} ({self.columns}) FROM STDIN") as copy:
            for values in rows:
                copy.write_row(self.row(values))


def items_write_copy(*, study: Study, parsed: Sequence[ParsedItem]) -> Iterator[tuple[int, int]]:
    """PostgreSQL: the same rows as `items_write_bulk`, sent with COPY (several times faster
    than multi-row INSERTs), a batch at a time, in the caller's transaction."""
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as wrapper, db.wrap_database_errors:
        cursor = wrapper.cursor  # psycopg 3 under Django's wrapper: it has copy()
        for start in range(0, len(parsed), IMPORT_COPY_BATCH_SIZE):
            chunk = parsed[start : start + IMPORT_COPY_BATCH_SIZE]
            # Built per batch, so auto_now_add is the time of the batch, as with bulk_create.
            item_rows = CopyRows(Item, ITEM_FROM_PARSED, study=study)
            output_rows = CopyRows(Output, ["item_id", "system", "text", "model_name"])
            item_rows.copy(
                cursor, ({n: get(p) for n, get in ITEM_FROM_PARSED.items()} for p in chunk)
            )
            cursor.execute(
                "SELECT external_id, id FROM annotations_item"
                " WHERE study_id = %s AND external_id = ANY(%s)",
                (study.pk, [p.external_id for p in chunk]),
            )
            ids = dict(cursor.fetchall())
            output_rows.copy(
                cursor,
                (
                    {"item_id": ids[p.external_id], **values}
                    for p in chunk
                    for values in output_values(study=study, parsed=p)
                ),
            )
            yield len(chunk), 2 * len(chunk)


# --- raters ---------------------------------------------------------------------------------


@transaction.atomic
def raters_assign(*, study: Study, usernames: Sequence[str]) -> list[StudyRater]:
    """Adds raters to a study (idempotent). Raises DomainValidationError for unknown users or
    users without the rater role."""
    users = {
        u.username: u
        for u in User.objects.filter(username__in=usernames).prefetch_related("groups")
    }
    missing = [name for name in usernames if name not in users]
    if missing:
        raise DomainValidationError(f"unknown user(s): {', '.join(missing)}")
    not_raters = [name for name, user in users.items() if not roles.is_rater(user)]
    if not_raters:
        raise DomainValidationError(
            f"user(s) without the rater role: {', '.join(sorted(not_raters))}"
        )
    memberships = []
    for name in usernames:
        membership, _ = StudyRater.objects.get_or_create(
            study=study,
            rater=users[name],
            defaults={
                "order_multiplier": 1 + secrets.randbelow(ORDER_MODULUS - 1),
                "order_offset": secrets.randbelow(ORDER_MODULUS),
            },
        )
        memberships.append(membership)
    return memberships


@transaction.atomic
def rater_remove(*, study: Study, username: str) -> None:
    """Removes a rater from a study and releases their live leases; their judgments stay."""
    deleted, _ = StudyRater.objects.filter(study=study, rater__username=username).delete()
    if not deleted:
        raise NotFoundError(f"{username!r} is not a rater of {study.slug!r}")
    Assignment.objects.filter(
        item__study=study, rater__username=username, state=AssignmentState.LEASED
    ).delete()


# --- the rating queue -----------------------------------------------------------------------
# The next-pair and judgment paths run on every rater request; their statements live in
# `annotations.queue_sql` (plain SQL, see there why), the decisions stay here.


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
    multiplier, offset, held, resume_id, membership_id, memo = row[6:]
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
    )
    if resume_id is not None:
        leased_until = now + study.lease
        queue_sql.lease_extend(assignment_id=resume_id, leased_until=leased_until, now=now)
        item_id, left_system, prompt, base_text, tuned_text = queue_sql.leased_pair_read(
            assignment_id=resume_id
        )
        return LeasedPair(
            resume_id, item_id, left_system, leased_until, slug, instructions, prompt,
            base_text, tuned_text,
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
            prompt, base_text, tuned_text,
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


@transaction.atomic
def adjudication_record(
    *, study: Study, external_id: str, preference: str, rationale: str, user: AbstractBaseUser
):
    """Records (or replaces) a researcher's ruling on one item. Raises NotFoundError,
    DomainValidationError (unknown preference, empty rationale)."""
    from annotations.models import Adjudication

    item = Item.objects.filter(study=study, external_id=external_id).first()
    if item is None:
        raise NotFoundError(f"no item {external_id!r} in study {study.slug!r}")
    if preference not in Preference.values:
        raise DomainValidationError(
            f"preference must be one of {', '.join(Preference.values)}",
            errors={"preference": ["invalid"]},
        )
    if not rationale.strip():
        raise DomainValidationError("say why (rationale)", errors={"rationale": ["required"]})
    adjudication, _ = Adjudication.objects.update_or_create(
        item=item,
        defaults={"preference": preference, "rationale": rationale.strip(), "decided_by": user},
    )
    audit_record(
        entity="item",
        entity_id=external_id,
        action="adjudicated",
        actor=user,
        study=study,
        after=preference,
        details={"rationale": rationale.strip()},
    )
    evidence_changed_notify(study.pk)
    return adjudication
