"""The dashboard's pure arithmetic (`annotations.pace`): buckets, the rate window, the
completion estimate and the live rater flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from annotations import pace

NOW = datetime(2025, 6, 10, 14, 25, tzinfo=UTC)


def test_hourly_buckets_cover_the_last_48_hours_with_zeros_where_none() -> None:
    this_hour = datetime(2025, 6, 10, 14, tzinfo=UTC)
    counts = {this_hour: (5, 1), this_hour - timedelta(hours=47): (2, 0)}

    buckets = pace.hourly_buckets(counts, now=NOW)

    assert len(buckets) == 48
    assert buckets[0] == pace.Bucket(this_hour - timedelta(hours=47), 2, 0)
    assert buckets[-1] == pace.Bucket(this_hour, 5, 1)
    assert sum(b.judgments for b in buckets) == 7


def test_daily_buckets_run_from_the_first_day_with_judgments_to_today() -> None:
    first = datetime(2025, 6, 7, tzinfo=UTC)
    buckets = pace.daily_buckets({first: (3, 0), datetime(2025, 6, 9, tzinfo=UTC): (4, 2)}, now=NOW)

    assert [(b.start.day, b.judgments, b.flagged_fast) for b in buckets] == [
        (7, 3, 0),
        (8, 0, 0),
        (9, 4, 2),
        (10, 0, 0),
    ]
    assert pace.daily_buckets({}, now=NOW) == []


@pytest.mark.parametrize(
    ("windows", "picked"),
    [
        ({1: 30, 6: 100, 24: 300}, (1, 30)),  # the last hour is steady enough
        ({1: 5, 6: 40, 24: 90}, (6, 40)),  # too few in the hour: six hours
        ({1: 0, 6: 3, 24: 8}, (24, 8)),  # never steady: the longest window with any
        ({1: 0, 6: 0, 24: 0}, None),
    ],
)
def test_pick_rate_window(windows, picked) -> None:
    assert pace.pick_rate_window(windows) == picked


def estimate(**overrides) -> pace.CompletionEstimate:
    arguments = {
        "votes_remaining": 120,
        "window_counts": {1: 5, 6: 60, 24: 200},
        "now": NOW,
        "collecting": True,
        "items_open": 40,
        "items_blocked": 0,
    } | overrides
    return pace.completion_estimate(**arguments)


def test_estimate_divides_the_votes_left_by_the_recent_rate() -> None:
    result = estimate()

    assert result.status == pace.ESTIMATED
    assert (result.window_hours, result.judgments_in_window) == (6, 60)
    assert result.per_hour == 10.0
    assert result.hours_left == 12.0
    assert result.finish_at == NOW + timedelta(hours=12)
    assert result.message == (
        "120 votes to go at 10.0 per hour (the last 6 hours: 60 judgments): about 12.0 h more."
    )


@pytest.mark.parametrize(
    ("overrides", "status", "says"),
    [
        ({"votes_remaining": 0}, pace.COMPLETE, "Every item has the votes it wants."),
        ({"collecting": False}, pace.NOT_COLLECTING, "the study is not collecting"),
        ({"items_blocked": 40}, pace.STUCK, "every item still wanting votes is blocked"),
        ({"window_counts": {1: 0, 6: 0, 24: 0}}, pace.NO_RECENT_ACTIVITY, "no recent activity"),
    ],
)
def test_no_date_is_invented(overrides, status, says) -> None:
    result = estimate(**overrides)

    assert result.status == status
    assert result.finish_at is None and result.hours_left is None
    assert says in result.message


def test_an_estimate_with_some_items_blocked_says_so() -> None:
    result = estimate(items_blocked=3)

    assert result.status == pace.ESTIMATED and result.finish_at == NOW + timedelta(hours=12)
    assert result.message.endswith(
        "3 of the 40 items still wanting votes are blocked (see what is waiting, below): the "
        "date assumes they are unblocked in time."
    )


def test_durations_read_naturally() -> None:
    assert "about 30 min more" in estimate(votes_remaining=5).message
    assert "about 5.0 days more" in estimate(votes_remaining=1_200).message


def flags(**counts) -> tuple[str, ...]:
    arguments = {"judged": 40, "flagged_fast": 0, "gold_judged": 0, "gold_correct": 0}
    arguments |= {"skipped": 0} | counts
    return pace.rater_flags(**arguments, thresholds=pace.ActivityThresholds())


def test_rater_flags_fire_past_their_thresholds_only() -> None:
    assert flags() == ()
    assert flags(flagged_fast=8) == ()  # 20% is the limit, not over it
    assert flags(flagged_fast=9) == (pace.FLAG_FAST,)
    assert flags(gold_judged=10, gold_correct=5) == (pace.FLAG_LOW_GOLD_ACCURACY,)
    assert flags(gold_judged=10, gold_correct=6) == ()
    assert flags(skipped=20) == (pace.FLAG_SKIPS_OFTEN,)  # 20 of 60 met: a third


def test_a_new_rater_is_not_flagged_on_noise() -> None:
    assert flags(judged=9, flagged_fast=9) == ()
    assert flags(gold_judged=9, gold_correct=0) == ()
    assert flags(judged=4, skipped=5) == ()


def test_thresholds_come_from_the_study_settings() -> None:
    assert pace.activity_thresholds(None) == pace.ActivityThresholds()
    read = pace.activity_thresholds(
        {"min_votes_to_judge": 3, "min_gold_accuracy": 0.8, "max_fast_share": None}
    )
    assert read == pace.ActivityThresholds(min_judgments=3, min_gold_accuracy=0.8)
