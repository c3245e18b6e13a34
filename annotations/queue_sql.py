"""SQL of the rater loop's hot path: the next pair and a judgment.

Every rater request runs these, so they are plain SQL rather than ORM querysets: building and
compiling the querysets cost more CPU than PostgreSQL spent answering them, and a few of them
fold two round trips into one (the study, the membership and the rater's live leases in one
read; the vote recount and the new lease in one conditional INSERT; the texts of the pair with
the item pick). The statements are the same on PostgreSQL and SQLite except for row locks,
which only PostgreSQL takes (SQLite's IMMEDIATE transactions serialise writers instead).

The decisions (which pool, when to skip, what counts as a vote) stay in `services`; this module
only holds the statements and runs them. `%%` is a literal `%` (the modulo operator).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from django.db import connection

from annotations.models import (
    Assignment,
    AssignmentState,
    CrowdLink,
    Item,
    Judgment,
    Output,
    Study,
)
from annotations.models import StudyRater as Membership
from annotations.queue_rules import has_room_sql, holds_a_place_sql, item_capacity_sql

STUDY = Study._meta.db_table
ITEM = Item._meta.db_table
OUTPUT = Output._meta.db_table
MEMBERSHIP = Membership._meta.db_table
ASSIGNMENT = Assignment._meta.db_table
JUDGMENT = Judgment._meta.db_table
CROWD_LINK = CrowdLink._meta.db_table

JUDGED = AssignmentState.JUDGED.value
SKIPPED = AssignmentState.SKIPPED.value
LEASED = AssignmentState.LEASED.value


def _uuid_param(value: UUID) -> Any:
    """A UUID as the backend stores it (SQLite: 32 hex characters; PostgreSQL: a uuid)."""
    return Study._meta.get_field("public_id").get_db_prep_value(value, connection)


def _texts(item: str) -> str:
    """Both outputs' texts of an item, as two columns (base, tuned)."""
    return (
        f"(SELECT o.text FROM {OUTPUT} o WHERE o.item_id = {item}.id AND o.system = 'base'), "
        f"(SELECT o.text FROM {OUTPUT} o WHERE o.item_id = {item}.id AND o.system = 'tuned')"
    )


def _run(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _run_count(sql: str, params: Sequence[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def db_time(value: datetime) -> Any:
    """A datetime as the backend stores it (SQLite: naive UTC text; PostgreSQL: as is)."""
    return connection.ops.adapt_datetimefield_value(value)


def row_locks() -> bool:
    return connection.features.has_select_for_update


# A crowd participant's cap (their link's items per participant; NULL for other raters) and
# their judgments in the study, counted only when there is a cap: the rater loop of everyone
# else pays nothing for it. Both expect `s` (study), `m` (membership) and `cl` (crowd link,
# LEFT JOINed on the membership).
CROWD_JOIN = f"LEFT JOIN {CROWD_LINK} cl ON cl.id = m.crowd_link_id"
CROWD_CAP = "cl.items_per_participant"
CROWD_JUDGED = (
    f"CASE WHEN cl.items_per_participant IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM {JUDGMENT} cj "
    f"JOIN {ITEM} ci ON ci.id = cj.item_id WHERE ci.study_id = s.id AND cj.rater_id = m.rater_id) "
    "END"
)
REMOVED = "CASE WHEN m.removed_at IS NULL THEN 0 ELSE 1 END"


# --- next pair ------------------------------------------------------------------------------


class RaterStudyRow(NamedTuple):
    """The study, the rater's membership and their live leases, as `rater_study_read` reads
    them."""

    study_id: int
    public_id: Any
    rater_title: str
    status: str
    overlap: int
    gold_rate: float
    lease_minutes: int
    instructions: str
    order_multiplier: int
    order_offset: int
    leases_held: int
    resume_id: int | None  # the first live lease not in `exclude_ids`
    membership_id: int
    memo: str  # the queue memo if written after `memo_since`, else ""
    display_strip_prefixes: Any  # the study's display prefixes as stored (JSON)
    removed: bool  # the rater was removed from the study
    item_cap: int | None  # a crowd participant's most judgments; None for other raters
    judged: int  # the rater's judgments in the study, counted only with a cap (else 0)


def rater_study_read(
    *,
    rater_id: int,
    now: datetime,
    exclude_ids: Sequence[int],
    memo_since: datetime,
    slug: str | None = None,
    public_id: UUID | None = None,
) -> RaterStudyRow | None:
    """The study (by `slug` or `public_id`), the rater's membership and their live leases in
    one read. None: no such study, or not a rater of it."""
    live = f"a.state = '{LEASED}' AND a.leased_until > %s"
    not_excluded = (
        f" AND a.id NOT IN ({', '.join(['%s'] * len(exclude_ids))})" if exclude_ids else ""
    )
    leases = (
        f"FROM {ASSIGNMENT} a JOIN {ITEM} i ON i.id = a.item_id "
        f"WHERE i.study_id = s.id AND a.rater_id = m.rater_id AND {live}"
    )
    by = "s.public_id = %s" if public_id is not None else "s.slug = %s"
    sql = (
        f"SELECT s.id, s.public_id, s.rater_title, s.status, s.overlap, s.gold_rate, "
        f"s.lease_minutes, s.instructions, m.order_multiplier, m.order_offset, "
        f"(SELECT COUNT(*) {leases}), "
        f"(SELECT a.id {leases}{not_excluded} ORDER BY a.created_at, a.id LIMIT 1), "
        f"m.id, CASE WHEN m.queue_window_at > %s THEN m.queue_window ELSE '' END, "
        f"s.display_strip_prefixes, {REMOVED}, {CROWD_CAP}, {CROWD_JUDGED} "
        f"FROM {STUDY} s JOIN {MEMBERSHIP} m ON m.study_id = s.id {CROWD_JOIN} "
        f"WHERE {by} AND m.rater_id = %s"
    )
    when = db_time(now)
    key = _uuid_param(public_id) if public_id is not None else slug
    rows = _run(sql, [when, when, *exclude_ids, db_time(memo_since), key, rater_id])
    if not rows:
        return None
    row = RaterStudyRow(*rows[0])
    return row._replace(removed=bool(row.removed))


def lease_extend(*, assignment_id: int, leased_until: datetime, now: datetime) -> None:
    _run_count(
        f"UPDATE {ASSIGNMENT} SET leased_until = %s, updated_at = %s WHERE id = %s",
        [db_time(leased_until), db_time(now), assignment_id],
    )


class PairTexts(NamedTuple):
    item_id: int
    left_system: str
    prompt: str
    base_text: str
    tuned_text: str


def leased_pair_read(*, assignment_id: int) -> PairTexts:
    """The item, sides and texts of an assignment."""
    rows = _run(
        f"SELECT i.id, a.left_system, i.prompt, {_texts('i')} "
        f"FROM {ASSIGNMENT} a JOIN {ITEM} i ON i.id = a.item_id WHERE a.id = %s",
        [assignment_id],
    )
    return PairTexts(*rows[0])


def _candidates(
    *,
    study_id: int,
    rater_id: int,
    gold: bool,
    order_multiplier: int,
    order_offset: int,
    modulus: int,
    overlap: int,
    now: datetime,
    window: int | None,
    among: Sequence[int] | None,
    skipped: Sequence[int],
    limit: int,
    lock: bool,
) -> list[tuple]:
    """The rater's next items with room in one pool, in their order (see `candidate_lock`)."""
    when = db_time(now)
    # The rater's own order: x = (id * a + b) mod P, then x^2 mod P. The affine step alone keeps
    # neighbouring ids in near-id order when a is small (two raters then share an order); the
    # square mixes it (x and P - x tie, so the id breaks ties). x^2 < 2^62 fits a BIGINT.
    mixed = "((({t}.id %% %s) * %s + %s) %% %s)"
    order = f"{{t}}.priority DESC, ({mixed} * {mixed}) %% %s, {{t}}.id"
    order_params = [*[modulus, order_multiplier, order_offset, modulus] * 2, modulus]
    pool = (
        "{t}.study_id = %s AND {t}.is_gold = %s AND NOT {t}.held AND NOT {t}.excluded "
        f"AND NOT EXISTS (SELECT 1 FROM {ASSIGNMENT} mine WHERE mine.item_id = {{t}}.id "
        f"AND mine.rater_id = %s AND (mine.state IN ('{JUDGED}', '{SKIPPED}') "
        f"OR (mine.state = '{LEASED}' AND mine.leased_until > %s)))"
    )
    pool_params: list[Any] = [study_id, gold, rater_id, when]
    if skipped:
        pool += f" AND {{t}}.id NOT IN ({', '.join(['%s'] * len(skipped))})"
        pool_params += list(skipped)
    params: list[Any] = []
    if among is not None:
        where = f"i.id IN ({', '.join(['%s'] * len(among))}) AND {pool.format(t='i')}"
        params += [*among, *pool_params]
    elif window is None:
        where = pool.format(t="i")
        params += pool_params
    else:
        where = (
            f"i.id IN (SELECT w.id FROM {ITEM} w WHERE {pool.format(t='w')} "
            f"ORDER BY {order.format(t='w')} LIMIT %s)"
        )
        params += [*pool_params, *order_params, window]
    if not gold:
        where += f" AND {has_room_sql(item='i')}"
        params += [when, overlap]
    columns = f"i.id, i.extra_votes, i.prompt, {_texts('i')}" if lock else "i.id"
    locking = " FOR UPDATE OF i SKIP LOCKED" if lock and row_locks() else ""
    sql = (
        f"SELECT {columns} FROM {ITEM} i "
        f"WHERE {where} ORDER BY {order.format(t='i')} LIMIT %s{locking}"
    )
    return _run(sql, [*params, *order_params, limit])


class Candidate(NamedTuple):
    item_id: int
    extra_votes: int
    prompt: str
    base_text: str
    tuned_text: str


def candidate_lock(
    *, among: Sequence[int] | None = None, window: int | None = None, **pool: Any
) -> Candidate | None:
    """Locks (PostgreSQL: `FOR UPDATE SKIP LOCKED`) and returns the rater's next free item of
    one pool, or None.

    Pool (`pool` keywords: study_id, rater_id, gold, order_multiplier, order_offset, modulus,
    overlap, now, skipped): the study's items of that kind (gold or not), not held, not
    excluded, that the rater has not judged, skipped or leased (live). Order: priority, then the
    rater's permutation. Outside the gold pool an item must also have room: fewer judgments
    plus live leases than k plus its extra votes. With `among`, only those item ids are
    considered. With `window`, only the first `window` items of the pool in that order are
    (votes are counted for those only); the first free item of the window is the first free
    item of all, since every item ahead of it is in the window.
    """
    rows = _candidates(among=among, window=window, limit=1, lock=True, **pool)
    return Candidate(*rows[0]) if rows else None


def candidate_ids(*, window: int | None, limit: int, **pool: Any) -> list[int]:
    """Ids of the rater's next `limit` items with room (no lock; see `candidate_lock`)."""
    rows = _candidates(among=None, window=window, limit=limit, lock=False, **pool)
    return [row[0] for row in rows]


def queue_memo_store(*, membership_id: int, item_ids: Sequence[int], now: datetime) -> None:
    _run_count(
        f"UPDATE {MEMBERSHIP} SET queue_window = %s, queue_window_at = %s WHERE id = %s",
        [",".join(str(i) for i in item_ids), db_time(now), membership_id],
    )


def lease_insert_if_room(
    *,
    item_id: int,
    rater_id: int,
    left_system: str,
    leased_until: datetime,
    now: datetime,
    capacity: int | None,
) -> int | None:
    """Inserts the rater's lease on a locked item if the rater has no assignment on it and (with
    `capacity`) the item holds fewer judgments plus live leases than that; returns the new id,
    or None when a condition failed.

    A separate statement from the pick on purpose: on PostgreSQL a new statement reads a new
    snapshot, so it counts every vote committed before this transaction took the item's lock
    (the pick's own count may predate them).
    """
    when = db_time(now)
    room = ""
    params: list[Any] = [
        item_id,
        rater_id,
        left_system,
        LEASED,
        db_time(leased_until),
        when,
        when,
        item_id,
        rater_id,
    ]
    if capacity is not None:
        room = (
            f" AND (SELECT COUNT(*) FROM {ASSIGNMENT} c WHERE c.item_id = %s "
            f"AND {holds_a_place_sql('c')}) < %s"
        )
        params += [item_id, when, capacity]
    rows = _run(
        f"INSERT INTO {ASSIGNMENT} (item_id, rater_id, left_system, state, leased_until, "
        f"created_at, updated_at) SELECT %s, %s, %s, %s, %s, %s, %s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {ASSIGNMENT} m WHERE m.item_id = %s AND m.rater_id = %s)"
        f"{room} RETURNING id",
        params,
    )
    return rows[0][0] if rows else None


# --- judgment -------------------------------------------------------------------------------


class JudgmentLock(NamedTuple):
    """The rater's assignment, its item and study, as `assignment_lock_for_judgment` reads
    them."""

    state: str
    left_system: str
    lease_live: bool
    item_id: int
    is_gold: bool
    extra_votes: int
    study_id: int
    status: str
    overlap: int
    max_overlap: int
    lease_minutes: int
    min_time_ms: int | None
    text_chars: int  # both outputs together, for the minimum reading time
    member: bool  # the rater is (still) in the study
    item_cap: int | None  # a crowd participant's most judgments; None for other raters


def assignment_lock_for_judgment(
    *, assignment_id: int, rater_id: int, now: datetime
) -> JudgmentLock | None:
    """Locks the item row, then the assignment row (the services' lock order), of the rater's
    own assignment and reads it; None when the assignment does not exist or is someone
    else's."""
    lock = " FOR UPDATE OF i, a" if row_locks() else ""
    rows = _run(
        f"SELECT a.state, a.left_system, CASE WHEN a.leased_until > %s THEN 1 ELSE 0 END, "
        f"i.id, i.is_gold, i.extra_votes, s.id, s.status, s.overlap, s.max_overlap, "
        f"s.lease_minutes, s.min_time_ms, "
        f"(SELECT COALESCE(SUM(LENGTH(o.text)), 0) FROM {OUTPUT} o WHERE o.item_id = i.id), "
        f"CASE WHEN m.id IS NOT NULL AND m.removed_at IS NULL THEN 1 ELSE 0 END, {CROWD_CAP} "
        f"FROM {ITEM} i JOIN {ASSIGNMENT} a ON a.item_id = i.id "
        f"JOIN {STUDY} s ON s.id = i.study_id "
        f"LEFT JOIN {MEMBERSHIP} m ON m.study_id = s.id AND m.rater_id = a.rater_id {CROWD_JOIN} "
        f"WHERE a.id = %s AND a.rater_id = %s{lock}",
        [db_time(now), assignment_id, rater_id],
    )
    if not rows:
        return None
    row = JudgmentLock(*rows[0])
    return row._replace(
        lease_live=bool(row.lease_live), is_gold=bool(row.is_gold), member=bool(row.member)
    )


def crowd_judged_lock(*, study_id: int, rater_id: int) -> int:
    """Locks a crowd participant's membership row (after the item and assignment rows), then
    counts their judgments in the study: two of their submissions at once are counted one
    after the other, so neither takes them past their cap. Two statements on purpose: the
    count must be read after the lock is granted (PostgreSQL: a new snapshot)."""
    if row_locks():
        _run(
            f"SELECT id FROM {MEMBERSHIP} WHERE study_id = %s AND rater_id = %s FOR UPDATE",
            [study_id, rater_id],
        )
    rows = _run(
        f"SELECT COUNT(*) FROM {JUDGMENT} j JOIN {ITEM} i ON i.id = j.item_id "
        f"WHERE i.study_id = %s AND j.rater_id = %s",
        [study_id, rater_id],
    )
    return int(rows[0][0])


def places_held_by_others(*, item_id: int, assignment_id: int, now: datetime) -> int:
    rows = _run(
        f"SELECT COUNT(*) FROM {ASSIGNMENT} c WHERE c.item_id = %s AND c.id <> %s "
        f"AND {holds_a_place_sql('c')}",
        [item_id, assignment_id, db_time(now)],
    )
    return int(rows[0][0])


def judgment_insert(
    *,
    assignment_id: int,
    item_id: int,
    rater_id: int,
    choice: str,
    preferred: str,
    left_system: str,
    rationale: str,
    time_ms: int | None,
    flagged_fast: bool,
    idempotency_key: str | None,
    now: datetime,
) -> int:
    """Inserts the judgment and marks its assignment judged; returns the judgment's id.
    Raises IntegrityError when the item already holds this rater's judgment, or the rater
    used the idempotency key on another judgment."""
    rows = _run(
        f"INSERT INTO {JUDGMENT} (assignment_id, item_id, rater_id, choice, preferred, "
        f"left_system, rationale, time_ms, flagged_fast, idempotency_key, created_at) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        [
            assignment_id,
            item_id,
            rater_id,
            choice,
            preferred,
            left_system,
            rationale,
            time_ms,
            flagged_fast,
            idempotency_key,
            db_time(now),
        ],
    )
    _run_count(
        f"UPDATE {ASSIGNMENT} SET state = %s, updated_at = %s WHERE id = %s",
        [JUDGED, db_time(now), assignment_id],
    )
    return int(rows[0][0])


def votes_by_preference(*, item_id: int) -> dict[str, int]:
    rows = _run(
        f"SELECT preferred, COUNT(*) FROM {JUDGMENT} WHERE item_id = %s GROUP BY preferred",
        [item_id],
    )
    return {preferred: int(n) for preferred, n in rows}


def extra_vote_add(*, item_id: int) -> None:
    _run_count(f"UPDATE {ITEM} SET extra_votes = extra_votes + 1 WHERE id = %s", [item_id])


# --- what is left for a rater ---------------------------------------------------------------


class RaterStudy(NamedTuple):
    study_id: int
    public_id: Any
    rater_title: str
    instructions: str
    status: str
    overlap: int
    judged: int  # the rater's judgments in the study
    removed: bool  # the rater was removed from the study
    item_cap: int | None  # a crowd participant's most judgments; None for other raters
    completion_code: str | None  # a crowd participant's link's code (shown only when done)


def rater_studies_read(*, rater_id: int, public_id: UUID | None = None) -> list[RaterStudy]:
    """The rater's studies (or only `public_id`), each with the rater's judgments in it. The
    list leaves out studies the rater was removed from; one study by `public_id` comes with
    `removed` set instead, so the page can say so."""
    judged = (
        f"SELECT COUNT(*) FROM {JUDGMENT} j JOIN {ITEM} ji ON ji.id = j.item_id "
        f"WHERE ji.study_id = s.id AND j.rater_id = m.rater_id"
    )
    only = " AND s.public_id = %s" if public_id is not None else " AND m.removed_at IS NULL"
    params: list[Any] = [rater_id]
    if public_id is not None:
        params.append(_uuid_param(public_id))
    rows = _run(
        f"SELECT s.id, s.public_id, s.rater_title, s.instructions, s.status, s.overlap, "
        f"({judged}), {REMOVED}, {CROWD_CAP}, cl.completion_code "
        f"FROM {STUDY} s JOIN {MEMBERSHIP} m ON m.study_id = s.id {CROWD_JOIN} "
        f"WHERE m.rater_id = %s{only} ORDER BY s.created_at DESC, s.id",
        params,
    )
    return [RaterStudy(*row)._replace(removed=bool(row[7])) for row in rows]


def items_left_for_rater(*, study_id: int, overlap: int, rater_id: int, now: datetime) -> int:
    """Items of the study still open to the rater: not held or excluded, not judged or skipped
    by them, and gold, leased by them right now, or with room.

    Not on the hot path (the rating page's counter, the rater's study list). The places held
    are counted once per item in a grouped subquery joined to the items, not in a subquery per
    item: ~20 ms instead of ~300 ms at 50,000 items on PostgreSQL.
    """
    when = db_time(now)
    own_live = f"mine.state = '{LEASED}' AND mine.leased_until > %s"
    rows = _run(
        f"SELECT COUNT(*) FROM {ITEM} i "
        f"LEFT JOIN (SELECT c.item_id, COUNT(*) AS n FROM {ASSIGNMENT} c "
        f"JOIN {ITEM} ci ON ci.id = c.item_id WHERE ci.study_id = %s "
        f"AND {holds_a_place_sql('c')} GROUP BY c.item_id) p ON p.item_id = i.id "
        f"LEFT JOIN {ASSIGNMENT} mine ON mine.item_id = i.id AND mine.rater_id = %s "
        f"WHERE i.study_id = %s AND NOT i.held AND NOT i.excluded "
        f"AND (mine.id IS NULL OR mine.state = '{LEASED}') "
        f"AND (i.is_gold OR ({own_live}) OR COALESCE(p.n, 0) < {item_capacity_sql(item='i')})",
        [study_id, when, rater_id, study_id, when, overlap],
    )
    return int(rows[0][0])
