"""Reads for the live study dashboard: the pace of judgments, the completion estimate, each
rater's activity and quality flags, and the items that wait and why.

Every figure is an aggregate in SQL, in a fixed number of queries whatever the study's size:

1. one pass over the study's judgments grouped by rater and time bucket (hourly for the last
   48 hours, daily before), with the conditional counts the page needs (flagged too fast,
   gold and gold answered right, counted votes, the recent windows of the estimate);
2. one pass over the study's items with their judgments (votes wanted and still open, items
   complete without a majority and not adjudicated);
3. skips and pairs held now per rater (the assignment index on rater and state);
4. `selectors.study_blockers` for why the remaining items are not being rated.

The arithmetic (buckets, rate, estimate, flags) is in the pure `annotations.pace`. Those
passes cost seconds on a study with a million judgments, so pages read through
`study_dashboard_read`, which serves such a study from a snapshot (see the end of the module).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    F,
    Max,
    Q,
    When,
)
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from annotations import pace, selectors
from annotations.models import (
    Adjudication,
    Assignment,
    AssignmentState,
    Item,
    Judgment,
    Preference,
    Study,
    StudyRater,
    StudyStatus,
)
from annotations.queue_rules import item_capacity_sql

User = get_user_model()


@dataclass(frozen=True)
class RaterActivity:
    """One rater's work in the study. `judged` counts every judgment (gold too); `hourly` is
    the last `pace.RECENT_HOURS` hours, oldest first."""

    rater: str
    judged: int
    last_hour: int
    last_24_hours: int
    last_judged_at: datetime | None
    flagged_fast: int
    gold_judged: int
    gold_correct: int
    skipped: int
    leased_now: int
    hourly: tuple[int, ...]
    flags: tuple[str, ...]

    @property
    def fast_share(self) -> float | None:
        return pace.share(self.flagged_fast, self.judged)

    @property
    def gold_accuracy(self) -> float | None:
        return pace.share(self.gold_correct, self.gold_judged)

    @property
    def skip_share(self) -> float | None:
        return pace.share(self.skipped, self.judged + self.skipped)

    @property
    def flag_labels(self) -> list[str]:
        return [pace.FLAG_LABELS[flag] for flag in self.flags]


@dataclass(frozen=True)
class WaitingItems:
    """Items (not gold, not excluded) still wanting votes, and why they are not done.

    `rateable`: items the queue can serve an assigned rater now (they wait for the raters'
    pace); `blocked`: `selectors.study_blockers`' reasons; `needs_adjudication`: items with all
    their votes but no majority, with no researcher's ruling yet (they are not waiting for
    votes, but the study is not decided without them)."""

    items_open: int
    rateable: int
    leased_now: int
    needs_adjudication: int
    blocked: list[selectors.Blocker]


@dataclass(frozen=True)
class StudyDashboard:
    generated_at: datetime
    status: str
    status_display: str
    judgments: int
    votes_wanted: int
    votes_done: int
    hourly: list[pace.Bucket]
    daily: list[pace.Bucket]
    estimate: pace.CompletionEstimate
    raters: list[RaterActivity]
    waiting: WaitingItems
    thresholds: pace.ActivityThresholds
    # What computing these figures took, and the study's last change they saw.
    compute_seconds: float
    study_updated_at: datetime

    @property
    def votes_remaining(self) -> int:
        return self.votes_wanted - self.votes_done

    @property
    def percent(self) -> float:
        return 100.0 * self.votes_done / self.votes_wanted if self.votes_wanted else 0.0

    @property
    def judgments_last_hour(self) -> int:
        return sum(r.last_hour for r in self.raters)

    @property
    def judgments_last_24_hours(self) -> int:
        return sum(r.last_24_hours for r in self.raters)

    @property
    def hour_starts(self) -> tuple[datetime, ...]:
        return tuple(b.start for b in self.hourly)


def _judgment_buckets(study: Study, now: datetime) -> list[dict]:
    """Query 1: the study's judgments by rater and bucket start (an hour from `cutoff` on, a
    day before it), with every per-bucket count the dashboard shows."""
    cutoff = pace.floor_hour(now) - pace.HOUR * (pace.RECENT_HOURS - 1)
    counted = Q(item__is_gold=False, item__excluded=False)
    windows = {
        f"window_{hours}": Count(
            "pk", filter=counted & Q(created_at__gte=now - timedelta(hours=hours))
        )
        for hours in pace.RATE_WINDOWS_HOURS
    }
    return list(
        Judgment.objects.filter(item__study=study)
        .annotate(
            bucket=Case(
                When(created_at__gte=cutoff, then=TruncHour("created_at", tzinfo=UTC)),
                default=TruncDay("created_at", tzinfo=UTC),
                output_field=DateTimeField(),
            )
        )
        .values("rater_id", "bucket")
        .annotate(
            n=Count("pk"),
            fast=Count("pk", filter=Q(flagged_fast=True)),
            gold=Count("pk", filter=Q(item__is_gold=True)),
            gold_correct=Count(
                "pk", filter=Q(item__is_gold=True, preferred=F("item__gold_preference"))
            ),
            last=Max("created_at"),
            **windows,
        )
        .order_by()
    )


ITEM = Item._meta.db_table
JUDGMENT = Judgment._meta.db_table
ADJUDICATION = Adjudication._meta.db_table
WANTED = item_capacity_sql(item="i", overlap="%(k)s")
# Votes per item and preference first (one pass over the judgments, no per-item subqueries),
# then each counted item with its capacity. Plain SQL: the ORM's form of the same aggregate
# (items LEFT JOIN judgments, four filtered counts) cost PostgreSQL four times the CPU. Written
# for PostgreSQL and SQLite alike (FILTER needs SQLite 3.30; CASE rather than LEAST).
ITEM_TOTALS_SQL = f"""
WITH votes AS (
    SELECT j.item_id,
           count(*) AS judged,
           count(*) FILTER (WHERE j.preferred = %(base)s) AS n_base,
           count(*) FILTER (WHERE j.preferred = %(tuned)s) AS n_tuned,
           count(*) FILTER (WHERE j.preferred IN (%(tie)s, %(both_bad)s)) AS n_tie
    FROM {JUDGMENT} j JOIN {ITEM} i ON i.id = j.item_id
    WHERE i.study_id = %(study)s AND NOT i.is_gold AND NOT i.excluded
    GROUP BY j.item_id
)
SELECT coalesce(sum({WANTED}), 0),
       coalesce(sum(CASE WHEN v.judged < {WANTED} THEN v.judged
                         WHEN v.judged IS NULL THEN 0 ELSE {WANTED} END), 0),
       count(*) FILTER (
           WHERE v.judged >= {WANTED}
             AND NOT EXISTS (SELECT 1 FROM {ADJUDICATION} a WHERE a.item_id = i.id)
             AND ((v.n_base = v.n_tuned AND v.n_base >= v.n_tie)
                  OR (v.n_base = v.n_tie AND v.n_base >= v.n_tuned)
                  OR (v.n_tuned = v.n_tie AND v.n_tuned >= v.n_base)))
FROM {ITEM} i LEFT JOIN votes v ON v.item_id = i.id
WHERE i.study_id = %(study)s AND NOT i.is_gold AND NOT i.excluded
"""  # noqa: S608 - table names from model metadata, values as parameters


def _item_totals(study: Study) -> dict[str, int]:
    """Query 2: votes wanted and done (each item's judgments up to its capacity) over the
    items that count, and the complete items without a majority and without a ruling.

    "No majority" is the report's: the plurality of base, tuned and tie (both-bad counted as
    tie) is shared."""
    with connection.cursor() as cursor:
        cursor.execute(
            ITEM_TOTALS_SQL,
            {
                "study": study.pk,
                "k": study.overlap,
                "base": Preference.BASE.value,
                "tuned": Preference.TUNED.value,
                "tie": Preference.TIE.value,
                "both_bad": Preference.BOTH_BAD.value,
            },
        )
        wanted, done, needs_adjudication = cursor.fetchone()
    return {
        "votes_wanted": int(wanted),
        "votes_done": int(done),
        "needs_adjudication": int(needs_adjudication),
    }


def _assignment_counts(study: Study, rater_ids: list[int], now: datetime) -> dict[int, dict]:
    """Query 3: skips and pairs held now, per rater. Filtered on the raters' ids so the
    database reads the (rater, state, leased_until) index, not every assignment."""
    rows = (
        Assignment.objects.filter(item__study=study, rater_id__in=rater_ids)
        .filter(
            Q(state=AssignmentState.SKIPPED) | Q(state=AssignmentState.LEASED, leased_until__gt=now)
        )
        .values("rater_id")
        .annotate(
            skipped=Count("pk", filter=Q(state=AssignmentState.SKIPPED)),
            leased=Count("pk", filter=Q(state=AssignmentState.LEASED)),
        )
        .order_by()
    )
    return {row["rater_id"]: row for row in rows}


# The blockers that the raters' pace does not resolve (`leases_in_flight` does by itself;
# `study_not_open` is the estimate's own case).
BLOCKING_REASONS = frozenset({"no_raters", "held", "raters_exhausted", "raters_short"})


def study_dashboard(*, study: Study, now: datetime | None = None) -> StudyDashboard:
    """Everything the dashboard shows, as of `now` (default: the current time), computed now.
    Pages use `study_dashboard_read`, which serves large studies from a snapshot."""
    started = time.perf_counter()
    now = now or timezone.now()
    cutoff = pace.floor_hour(now) - pace.HOUR * (pace.RECENT_HOURS - 1)
    thresholds = pace.activity_thresholds((study.settings or {}).get("rater_thresholds"))

    rows = _judgment_buckets(study, now)
    hourly_counts: dict[datetime, list[int]] = {}
    daily_counts: dict[datetime, list[int]] = {}
    per_rater: dict[int, dict] = {}
    window_counts = dict.fromkeys(pace.RATE_WINDOWS_HOURS, 0)
    for row in rows:
        n, fast = row["n"], row["fast"]
        # Trunc inside Case loses Trunc's own conversion: PostgreSQL returns the UTC wall time
        # naive, SQLite an aware datetime.
        bucket = row["bucket"]
        if timezone.is_naive(bucket):
            bucket = bucket.replace(tzinfo=UTC)
        day = daily_counts.setdefault(pace.floor_day(bucket), [0, 0])
        day[0] += n
        day[1] += fast
        mine = per_rater.setdefault(
            row["rater_id"],
            {"n": 0, "fast": 0, "gold": 0, "gold_correct": 0, "last": None, "hourly": {}},
        )
        for key in ("n", "fast", "gold", "gold_correct"):
            mine[key] += row[key]
        mine["last"] = max(filter(None, (mine["last"], row["last"])))
        if bucket >= cutoff:
            hour = hourly_counts.setdefault(bucket, [0, 0])
            hour[0] += n
            hour[1] += fast
            mine["hourly"][bucket] = n
            for hours in pace.RATE_WINDOWS_HOURS:
                window_counts[hours] += row[f"window_{hours}"]
                mine.setdefault(f"window_{hours}", 0)
                mine[f"window_{hours}"] += row[f"window_{hours}"]

    hourly = pace.hourly_buckets({k: tuple(v) for k, v in hourly_counts.items()}, now=now)
    daily = pace.daily_buckets({k: tuple(v) for k, v in daily_counts.items()}, now=now)

    # Names in one look-up: grouping the judgments by name would join the user table to every
    # judgment. Raters removed from the study keep their rows.
    member_ids = set(StudyRater.objects.filter(study=study).values_list("rater_id", flat=True))
    rater_ids = sorted(member_ids | set(per_rater))
    names = dict(User.objects.filter(pk__in=rater_ids).values_list("pk", "username"))
    assignments = _assignment_counts(study, rater_ids, now)
    raters = []
    for rater_id in sorted(rater_ids, key=lambda pk: names[pk]):
        mine = per_rater.get(
            rater_id, {"n": 0, "fast": 0, "gold": 0, "gold_correct": 0, "last": None}
        )
        held = assignments.get(rater_id, {})
        skipped = held.get("skipped", 0)
        raters.append(
            RaterActivity(
                rater=names[rater_id],
                judged=mine["n"],
                last_hour=mine.get("window_1", 0),
                last_24_hours=mine.get("window_24", 0),
                last_judged_at=mine["last"],
                flagged_fast=mine["fast"],
                gold_judged=mine["gold"],
                gold_correct=mine["gold_correct"],
                skipped=skipped,
                leased_now=held.get("leased", 0),
                hourly=tuple(mine.get("hourly", {}).get(b.start, 0) for b in hourly),
                flags=pace.rater_flags(
                    judged=mine["n"],
                    flagged_fast=mine["fast"],
                    gold_judged=mine["gold"],
                    gold_correct=mine["gold_correct"],
                    skipped=skipped,
                    thresholds=thresholds,
                ),
            )
        )

    totals = _item_totals(study)
    blockers = selectors.study_blockers(study=study)
    votes_remaining = totals["votes_wanted"] - totals["votes_done"]
    estimate = pace.completion_estimate(
        votes_remaining=votes_remaining,
        window_counts=window_counts,
        now=now,
        collecting=study.status == StudyStatus.OPEN,
        items_open=blockers.items_open,
        items_blocked=sum(b.items for b in blockers.blocked if b.reason in BLOCKING_REASONS),
    )
    return StudyDashboard(
        generated_at=now,
        status=study.status,
        status_display=study.get_status_display(),
        judgments=sum(b.judgments for b in daily),
        votes_wanted=totals["votes_wanted"],
        votes_done=totals["votes_done"],
        hourly=hourly,
        daily=daily,
        estimate=estimate,
        raters=raters,
        waiting=WaitingItems(
            items_open=blockers.items_open,
            rateable=blockers.rateable,
            leased_now=sum(r.leased_now for r in raters),
            needs_adjudication=totals["needs_adjudication"],
            blocked=blockers.blocked,
        ),
        thresholds=thresholds,
        compute_seconds=time.perf_counter() - started,
        study_updated_at=study.updated_at,
    )


# --- snapshots of large studies -------------------------------------------------------------
# The figures above are a few passes over the study's judgments and assignments: milliseconds
# for most studies, seconds for one with a million judgments. A study whose figures cost more
# than `LIVE_COMPUTE_SECONDS` is served from a stored snapshot, recomputed in the background
# once it is older than `snapshot_max_age` (at least `SNAPSHOT_MIN_AGE_SECONDS`, and
# `SNAPSHOT_AGE_FACTOR` times what it took, so watching a large study costs a bounded share of
# one core); pages show when it was computed. A snapshot is a cache entry: nothing is lost
# when it is evicted (the next view computes it again).

logger = logging.getLogger(__name__)

# Part of the cache key: bump it when `StudyDashboard` or its parts change shape, so a stored
# snapshot of the old shape is never read.
SNAPSHOT_VERSION = 1
LIVE_COMPUTE_SECONDS = 0.5
SNAPSHOT_MIN_AGE_SECONDS = 10
SNAPSHOT_AGE_FACTOR = 10
SNAPSHOT_TTL_SECONDS = 6 * 3600
# A refresh already queued for a study is not queued again within this many seconds (it may
# have failed; the next view after this queues another).
REFRESH_DEDUPE_SECONDS = 600


@dataclass(frozen=True)
class DashboardRead:
    """The figures a page shows. `from_snapshot`: a stored snapshot, not computed for this
    request; `refreshing`: it is older than its study's refresh age (or the study changed
    since), and a newer one is being computed in the background."""

    board: StudyDashboard
    from_snapshot: bool
    refreshing: bool

    @property
    def max_age_seconds(self) -> float:
        return snapshot_max_age(self.board.compute_seconds)


def snapshot_max_age(compute_seconds: float) -> float:
    return max(SNAPSHOT_MIN_AGE_SECONDS, SNAPSHOT_AGE_FACTOR * compute_seconds)


def snapshot_key(study: Study) -> str:
    """The study's public id too: a cache shared by two databases (a benchmark's and a
    development one) never serves one study's figures for another with the same id."""
    return f"study-dashboard:{SNAPSHOT_VERSION}:{study.pk}:{study.public_id}"


def dashboard_snapshot_refresh(*, study: Study) -> StudyDashboard:
    """Computes the study's figures now and stores them as its snapshot."""
    board = study_dashboard(study=study)
    cache.set(snapshot_key(study), board, timeout=SNAPSHOT_TTL_SECONDS)
    cache.delete(f"study-dashboard-refresh:{study.pk}")
    return board


def dashboard_refresh_schedule(*, study_id: int) -> bool:
    """Queues a background refresh of the study's snapshot unless one is queued already: a
    Celery task with a broker; in-process (no broker), a thread, so the request that asked
    does not wait for it."""
    if not cache.add(f"study-dashboard-refresh:{study_id}", 1, timeout=REFRESH_DEDUPE_SECONDS):
        return False
    from annotations.tasks import refresh_study_dashboard

    if refresh_study_dashboard.app.conf.task_always_eager:
        thread = threading.Thread(
            target=_refresh_in_thread, args=[study_id], name=f"dashboard-{study_id}", daemon=True
        )
        transaction.on_commit(thread.start)
    else:
        transaction.on_commit(lambda: refresh_study_dashboard.delay(study_id))
    return True


def _refresh_in_thread(study_id: int) -> None:
    try:
        study = Study.objects.filter(pk=study_id).first()
        if study is not None:
            dashboard_snapshot_refresh(study=study)
    except Exception:  # a background thread has nobody to raise to: log it
        logger.exception("dashboard refresh of study %s failed", study_id)
    finally:
        connections.close_all()


def study_dashboard_read(*, study: Study, now: datetime | None = None) -> DashboardRead:
    """The figures to show now: computed for this request when they are cheap (or no snapshot
    exists yet), else the stored snapshot, with a background refresh queued when it is too
    old or the study changed since."""
    now = now or timezone.now()
    stored = cache.get(snapshot_key(study))
    if stored is None or stored.compute_seconds < LIVE_COMPUTE_SECONDS:
        return DashboardRead(dashboard_snapshot_refresh(study=study), False, False)
    age = (now - stored.generated_at).total_seconds()
    if age <= snapshot_max_age(stored.compute_seconds) and (
        stored.study_updated_at == study.updated_at
    ):
        return DashboardRead(stored, True, False)
    dashboard_refresh_schedule(study_id=study.pk)
    return DashboardRead(stored, True, True)
