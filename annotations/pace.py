"""A study's pace, pure: time buckets, the recent rate, the completion estimate and the live
quality flags of a rater. No Django: the dashboard's selectors (`annotations.dashboard`) read
the counts in SQL and hand them here.

The estimate never invents a date. It uses the shortest recent window (1, 6, then 24 hours)
that holds enough judgments to give a steady rate, says which window it used, and answers
"no recent activity" when the last day holds none; a study that is not collecting, or whose
remaining items nothing can serve, gets no date either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# The hourly plot's span; also the span of the per-rater activity grid.
RECENT_HOURS = 48
# Windows the estimate may use, shortest first: the shortest follows the current pace.
RATE_WINDOWS_HOURS = (1, 6, 24)
# A window with fewer judgments than this gives a noisy rate; a longer one is tried instead.
STEADY_RATE_JUDGMENTS = 20

# Why the estimate has (or has no) date.
ESTIMATED = "estimated"
COMPLETE = "complete"
NOT_COLLECTING = "not_collecting"
STUCK = "stuck"
NO_RECENT_ACTIVITY = "no_recent_activity"
ESTIMATE_STATUSES = (ESTIMATED, COMPLETE, NOT_COLLECTING, STUCK, NO_RECENT_ACTIVITY)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Bucket:
    """Judgments made in [start, start + its span), and how many were flagged too fast."""

    start: datetime
    judgments: int
    flagged_fast: int = 0


def hourly_buckets(
    counts: Mapping[datetime, tuple[int, int]], *, now: datetime, hours: int = RECENT_HOURS
) -> list[Bucket]:
    """The last `hours` hours up to and including the current one, oldest first, zeros where
    `counts` (hour start -> (judgments, flagged fast)) has none."""
    last = floor_hour(now)
    starts = [last - HOUR * k for k in range(hours - 1, -1, -1)]
    return [Bucket(s, *counts.get(s, (0, 0))) for s in starts]


def daily_buckets(counts: Mapping[datetime, tuple[int, int]], *, now: datetime) -> list[Bucket]:
    """Every day from the first with judgments to today, oldest first, zeros where `counts`
    (day start -> (judgments, flagged fast)) has none; empty without any judgment."""
    if not counts:
        return []
    day = floor_day(min(counts))
    today = floor_day(now)
    out = []
    while day <= today:
        out.append(Bucket(day, *counts.get(day, (0, 0))))
        day += DAY
    return out


# --- the completion estimate ----------------------------------------------------------------


@dataclass(frozen=True)
class CompletionEstimate:
    """When the study should have all its votes at the recent pace, or why no date is given.

    `window_hours` / `judgments_in_window`: the window the rate came from (None / 0 when no
    rate was taken); `per_hour`: votes per hour in it; `hours_left` and `finish_at` only when
    `status` is "estimated"; `items_blocked` of `items_open` (items still wanting votes) wait
    for something other than the raters' pace."""

    status: str
    votes_remaining: int
    window_hours: int | None
    judgments_in_window: int
    per_hour: float | None
    hours_left: float | None
    finish_at: datetime | None
    items_open: int = 0
    items_blocked: int = 0

    @property
    def message(self) -> str:
        if self.status == COMPLETE:
            return "Every item has the votes it wants."
        if self.status == NOT_COLLECTING:
            return (
                f"{self.votes_remaining:,} votes to go, but the study is not collecting: "
                "no completion date while raters cannot rate."
            )
        if self.status == STUCK:
            return (
                f"{self.votes_remaining:,} votes to go, but every item still wanting votes is "
                "blocked (see what is waiting, below): no completion date."
            )
        if self.status == NO_RECENT_ACTIVITY:
            return (
                f"{self.votes_remaining:,} votes to go; no recent activity "
                f"(no counted judgment in the last {RATE_WINDOWS_HOURS[-1]} hours), "
                "so no completion date."
            )
        text = (
            f"{self.votes_remaining:,} votes to go at {self.per_hour:,.1f} per hour "
            f"(the last {_hours(self.window_hours)}: {self.judgments_in_window:,} judgments): "
            f"about {_duration(self.hours_left)} more."
        )
        if self.items_blocked:
            text += (
                f" {self.items_blocked:,} of the {self.items_open:,} items still wanting votes "
                "are blocked (see what is waiting, below): the date assumes they are unblocked "
                "in time."
            )
        return text


def _hours(n: int | None) -> str:
    return "hour" if n == 1 else f"{n} hours"


def _duration(hours: float | None) -> str:
    if hours is None:
        return "an unknown time"
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def pick_rate_window(window_counts: Mapping[int, int]) -> tuple[int, int] | None:
    """(hours, judgments) of the window to take the rate from: the shortest of
    `RATE_WINDOWS_HOURS` with at least `STEADY_RATE_JUDGMENTS`, else the longest with any
    judgment; None when none has any."""
    for hours in RATE_WINDOWS_HOURS:
        if window_counts.get(hours, 0) >= STEADY_RATE_JUDGMENTS:
            return hours, window_counts[hours]
    for hours in reversed(RATE_WINDOWS_HOURS):
        if window_counts.get(hours, 0) > 0:
            return hours, window_counts[hours]
    return None


def completion_estimate(
    *,
    votes_remaining: int,
    window_counts: Mapping[int, int],
    now: datetime,
    collecting: bool,
    items_open: int,
    items_blocked: int,
) -> CompletionEstimate:
    """The estimate from the counted judgments (non-gold, non-excluded items: the units of
    `votes_remaining`) in each recent window (hours -> judgments since now - hours).

    `collecting`: the study serves pairs now; `items_blocked` of the `items_open` still
    wanting votes cannot get them at the raters' pace (held, or more votes wanted than the
    assigned raters can give): when that is all of them there is no date."""
    picked = pick_rate_window(window_counts)
    hours, n = picked if picked is not None else (None, 0)
    per_hour = n / hours if hours else None

    def estimate(status: str, hours_left: float | None = None) -> CompletionEstimate:
        finish_at = now + timedelta(hours=hours_left) if hours_left is not None else None
        return CompletionEstimate(
            status,
            votes_remaining,
            hours,
            n,
            per_hour,
            hours_left,
            finish_at,
            items_open,
            items_blocked,
        )

    if votes_remaining <= 0:
        return estimate(COMPLETE)
    if not collecting:
        return estimate(NOT_COLLECTING)
    if items_open and items_blocked >= items_open:
        return estimate(STUCK)
    if not per_hour:
        return estimate(NO_RECENT_ACTIVITY)
    return estimate(ESTIMATED, votes_remaining / per_hour)


# --- live rater quality flags ---------------------------------------------------------------

FLAG_FAST = "fast"
FLAG_LOW_GOLD_ACCURACY = "low_gold_accuracy"
FLAG_SKIPS_OFTEN = "skips_often"
FLAG_LABELS = {
    FLAG_FAST: "often too fast",
    FLAG_LOW_GOLD_ACCURACY: "low gold accuracy",
    FLAG_SKIPS_OFTEN: "skips often",
}


@dataclass(frozen=True)
class ActivityThresholds:
    """When the dashboard flags a rater. `min_judgments` and `min_gold_accuracy` are the
    report's (`rater_thresholds` in the study's settings: `min_votes_to_judge`,
    `min_gold_accuracy`), so both flag the same raters on gold; the shares are the
    dashboard's own (`max_fast_share`, `max_skip_share` in the same settings)."""

    min_judgments: int = 10
    max_fast_share: float = 0.2
    min_gold_accuracy: float = 0.6
    max_skip_share: float = 0.3


def activity_thresholds(config: Mapping[str, object] | None) -> ActivityThresholds:
    """From a study's `settings["rater_thresholds"]`; absent or null keys keep the defaults."""
    config = config or {}
    defaults = ActivityThresholds()

    def number(key: str, default: float) -> float:
        value = config.get(key)
        return default if value is None else float(value)  # type: ignore[arg-type]

    return ActivityThresholds(
        min_judgments=int(number("min_votes_to_judge", defaults.min_judgments)),
        max_fast_share=number("max_fast_share", defaults.max_fast_share),
        min_gold_accuracy=number("min_gold_accuracy", defaults.min_gold_accuracy),
        max_skip_share=number("max_skip_share", defaults.max_skip_share),
    )


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def rater_flags(
    *,
    judged: int,
    flagged_fast: int,
    gold_judged: int,
    gold_correct: int,
    skipped: int,
    thresholds: ActivityThresholds,
) -> tuple[str, ...]:
    """The flags a rater earns; each only once the rater has `min_judgments` relevant ones
    (judgments; gold judgments; judgments plus skips), so a new rater is not flagged on
    noise."""
    need = thresholds.min_judgments
    flags = []
    if judged >= need and flagged_fast / judged > thresholds.max_fast_share:
        flags.append(FLAG_FAST)
    if gold_judged >= need and gold_correct / gold_judged < thresholds.min_gold_accuracy:
        flags.append(FLAG_LOW_GOLD_ACCURACY)
    met = judged + skipped
    if met >= need and skipped / met > thresholds.max_skip_share:
        flags.append(FLAG_SKIPS_OFTEN)
    return tuple(flags)
