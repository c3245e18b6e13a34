"""The live study dashboard's reads (`annotations.dashboard.study_dashboard`): judgments per
hour and day, the completion estimate, per-rater activity and flags, what waits and why.

Judgments are made through the services, then their times are moved to known hours before a
fixed `now`, so the counts per bucket are exact."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from annotations import dashboard, pace, services
from annotations.dashboard import study_dashboard
from annotations.models import Assignment, Item, Judgment, StudyStatus
from annotations.tasks import refresh_study_dashboard
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


def judge(study, rater, n: int, *, prefer=lambda item: "tuned", time_ms: int = 4_000) -> list:
    """The rater judges up to `n` pairs the queue serves; returns the judgments."""
    made = []
    while len(made) < n and (a := services.assignment_next(study=study, rater=rater)):
        wanted = prefer(a.item)
        choice = "tie" if wanted == "tie" else ("1" if a.left_system == wanted else "2")
        made.append(
            services.judgment_submit(
                assignment_id=a.pk, rater=rater, choice=choice, time_ms=time_ms
            )
        )
    return made


def at(judgments, moment) -> None:
    Judgment.objects.filter(pk__in=[j.pk for j in judgments]).update(created_at=moment)


@pytest.fixture
def now():
    """The latest half past an hour (so "the last hour" and the current hour's bucket differ),
    not in the future (so leases made now are live at it)."""
    moment = timezone.now()
    if moment.minute < 30:
        moment -= timedelta(hours=1)
    return moment.replace(minute=30, second=0, microsecond=0)


@pytest.fixture
def paced(now):
    """20 items, k = 2, two raters; 3 judgments 5 days ago, 4 two hours ago (one of them
    flagged too fast), 5 in the last hour: 12 of 40 votes."""
    raters = [make_user(), make_user()]
    study = make_study(items=20, overlap=2, raters=raters)
    old = judge(study, raters[0], 3)
    earlier = judge(study, raters[0], 2) + judge(study, raters[1], 2)
    recent = judge(study, raters[1], 5)
    at(old, now - timedelta(days=5))
    at(earlier, now - timedelta(hours=2))
    at(recent, now - timedelta(minutes=10))
    Judgment.objects.filter(pk=earlier[0].pk).update(flagged_fast=True)
    return study, raters


def test_judgments_per_hour_and_per_day(paced, now) -> None:
    study, _ = paced

    board = study_dashboard(study=study, now=now)

    this_hour = pace.floor_hour(now)
    assert len(board.hourly) == pace.RECENT_HOURS
    assert board.hourly[-1] == pace.Bucket(this_hour, 5, 0)
    assert board.hourly[-3] == pace.Bucket(this_hour - timedelta(hours=2), 4, 1)
    assert sum(b.judgments for b in board.hourly) == 9  # the old three are out of the span
    days = {b.start: b.judgments for b in board.daily}
    assert len(board.daily) == 6  # five days ago through today, empty days included
    assert days[pace.floor_day(now - timedelta(days=5))] == 3
    assert sum(days.values()) == board.judgments == 12
    assert sum(b.flagged_fast for b in board.daily) == 1


def test_the_estimate_uses_the_recent_rate_and_names_its_window(paced, now) -> None:
    study, _ = paced

    board = study_dashboard(study=study, now=now)

    assert (board.votes_wanted, board.votes_done, board.votes_remaining) == (40, 12, 28)
    estimate = board.estimate
    # 5 in the last hour, 9 in six hours: both under the steady-rate minimum, so the longest
    # window with judgments (24 hours, 9 of them) gives the rate.
    assert estimate.status == pace.ESTIMATED
    assert (estimate.window_hours, estimate.judgments_in_window) == (24, 9)
    assert estimate.per_hour == pytest.approx(9 / 24)
    assert estimate.finish_at == now + timedelta(hours=28 / (9 / 24))
    assert (board.judgments_last_hour, board.judgments_last_24_hours) == (5, 9)


def test_no_recent_activity_gives_no_date(paced, now) -> None:
    study, _ = paced
    Judgment.objects.filter(item__study=study).update(created_at=now - timedelta(days=3))

    estimate = study_dashboard(study=study, now=now).estimate

    assert estimate.status == pace.NO_RECENT_ACTIVITY
    assert estimate.finish_at is None
    assert "no recent activity" in estimate.message


def test_a_closed_study_gets_no_date(paced, now) -> None:
    study, _ = paced
    study.status = StudyStatus.CLOSED
    study.save(update_fields=["status"])

    assert study_dashboard(study=study, now=now).estimate.status == pace.NOT_COLLECTING


def test_per_rater_activity(paced, now) -> None:
    study, (first, second) = paced
    lease = services.assignment_next(study=study, rater=first)
    skipped = services.assignment_next(study=study, rater=second)
    services.assignment_skip(assignment_id=skipped.pk, rater=second)

    board = study_dashboard(study=study, now=now)

    one, two = board.raters
    assert (one.rater, one.judged, one.last_hour, one.last_24_hours) == (first.username, 5, 0, 2)
    assert (two.rater, two.judged, two.last_hour, two.last_24_hours) == (second.username, 7, 5, 7)
    assert one.flagged_fast == 1 and one.fast_share == pytest.approx(1 / 5)
    assert (one.leased_now, one.skipped, two.leased_now, two.skipped) == (1, 0, 0, 1)
    assert one.last_judged_at == now - timedelta(hours=2)
    assert two.last_judged_at == now - timedelta(minutes=10)
    assert one.gold_accuracy is None  # no gold items
    assert sum(one.hourly) == 2 and sum(two.hourly) == 7 and len(two.hourly) == 48
    assert board.waiting.leased_now == 1
    assert Assignment.objects.filter(pk=lease.pk, state="leased").exists()


def test_quality_flags_fast_gold_and_skips(now) -> None:
    careless, careful = make_user(), make_user()
    study = make_study(
        items=30,
        overlap=2,
        gold=10,
        gold_rate=1.0,  # the queue serves the gold items first
        raters=[careless, careful],
        settings={"rater_thresholds": {"min_votes_to_judge": 5}},
    )
    # Gold answer: base. The careless rater says tuned on all and is fast on all.
    made = judge(study, careless, 20, prefer=lambda item: "tuned", time_ms=100)
    assert any(j.item.is_gold for j in made)
    judge(study, careful, 20, prefer=lambda item: "base", time_ms=9_000)
    Judgment.objects.filter(rater=careless).update(flagged_fast=True)
    for _ in range(6):
        a = services.assignment_next(study=study, rater=careful)
        services.assignment_skip(assignment_id=a.pk, rater=careful)

    board = study_dashboard(study=study, now=now)

    by_name = {r.rater: r for r in board.raters}
    bad, good = by_name[careless.username], by_name[careful.username]
    assert (bad.gold_judged, bad.gold_correct, bad.gold_accuracy) == (10, 0, 0.0)
    assert (good.gold_judged, good.gold_correct, good.gold_accuracy) == (10, 10, 1.0)
    assert bad.flags == (pace.FLAG_FAST, pace.FLAG_LOW_GOLD_ACCURACY)
    assert bad.flag_labels == ["often too fast", "low gold accuracy"]
    assert good.skipped == 6 and good.skip_share == pytest.approx(6 / 26)
    assert good.flags == ()
    # Gold judgments are rater work (plotted) but not votes toward the study's k.
    assert board.judgments == 40 and board.votes_done == 20


def test_items_waiting_and_why(now) -> None:
    raters = [make_user(), make_user()]
    study = make_study(items=4, overlap=2, raters=raters)
    # The second rater splits with the first on the first two pairs served and agrees on the
    # third: two items complete without a majority, one agreed, one short of a vote (held).
    judge(study, raters[0], 4, prefer=lambda item: "base")
    served = []

    def second_opinion(item):
        served.append(item.pk)
        return "tuned" if len(served) <= 2 else "base"

    judge(study, raters[1], 3, prefer=second_opinion)
    items = {item.pk: item for item in study.items.all()}
    (short,) = set(items) - set(served)
    # Held (as an identity flag holds it) with one vote still wanted.
    Item.objects.filter(pk=short).update(held=True, hold_reason="names its model")

    board = study_dashboard(study=study, now=now)

    waiting = board.waiting
    assert waiting.needs_adjudication == 2
    assert waiting.items_open == 1
    assert [(b.reason, b.items) for b in waiting.blocked] == [("held", 1)]
    assert board.estimate.status == pace.STUCK

    researcher = make_user("researcher")
    services.adjudication_record(
        study=study,
        external_id=items[served[0]].external_id,
        preference="base",
        rationale="checked",
        user=researcher,
    )
    assert study_dashboard(study=study, now=now).waiting.needs_adjudication == 1


def test_a_fixed_number_of_queries_whatever_the_size(now) -> None:
    def queries(n_raters: int, n_items: int) -> int:
        raters = [make_user() for _ in range(n_raters)]
        study = make_study(items=n_items, overlap=2, raters=raters)
        for rater in raters:
            judge(study, rater, n_items // 2)
        with CaptureQueriesContext(connection) as captured:
            study_dashboard(study=study, now=now)
        return len(captured)

    assert queries(2, 6) == queries(6, 30)


@pytest.mark.postgres
def test_buckets_estimate_and_waiting_on_postgresql(paced, now) -> None:
    """The same reads with PostgreSQL's date_trunc and conditional aggregates."""
    assert connection.vendor == "postgresql"
    study, (first, second) = paced

    board = study_dashboard(study=study, now=now)

    this_hour = pace.floor_hour(now)
    assert board.hourly[-1] == pace.Bucket(this_hour, 5, 0)
    assert board.hourly[-3] == pace.Bucket(this_hour - timedelta(hours=2), 4, 1)
    assert [b.judgments for b in board.daily if b.judgments] in ([3, 9], [3, 4, 5])
    assert (board.votes_wanted, board.votes_done) == (40, 12)
    assert (board.estimate.window_hours, board.estimate.judgments_in_window) == (24, 9)
    assert [(r.rater, r.judged, r.last_hour) for r in board.raters] == [
        (first.username, 5, 0),
        (second.username, 7, 5),
    ]
    complete = Item.objects.filter(study=study, judgments__isnull=False).annotate(
        n=Count("judgments")
    )
    assert board.waiting.items_open == 20 - complete.filter(n=2).count()
    assert board.waiting.rateable == board.waiting.items_open


def test_the_page_and_its_fragment_show_the_figures(paced, client) -> None:
    study, (first, _) = paced
    researcher = make_user("researcher")
    study.created_by = researcher
    study.save(update_fields=["created_by"])
    client.force_login(researcher)

    detail = client.get(f"/studies/{study.slug}/").content.decode()
    assert f'href="/studies/{study.slug}/dashboard/"' in detail

    page = client.get(f"/studies/{study.slug}/dashboard/")
    assert page.status_code == 200
    assert "no-cache" in page["Cache-Control"]
    html = page.content.decode()
    assert f'data-fragment-url="/studies/{study.slug}/dashboard/fragment/"' in html
    assert '<span class="figure" data-stat="judgments">12</span>' in html
    assert '<span class="figure" data-stat="votes-done">12</span>' in html
    assert html.count('<svg class="plot"') == 3
    assert f'<tr data-rater="{first.username}">' in html
    assert 'data-stat="items-open"' in html and "can be served to an assigned rater now" in html
    assert "Nothing blocks them: they fill at the raters' pace." in html

    fragment = client.get(f"/studies/{study.slug}/dashboard/fragment/")
    assert fragment.status_code == 200 and "no-cache" in fragment["Cache-Control"]
    body = fragment.content.decode()
    assert "<html" not in body and 'id="pace"' in body
    assert '<span class="figure" data-stat="judgments">12</span>' in body


def test_raters_never_see_the_dashboard(paced, client) -> None:
    study, (first, _) = paced
    client.force_login(first)
    assert client.get(f"/studies/{study.slug}/dashboard/").status_code == 403
    assert client.get(f"/studies/{study.slug}/dashboard/fragment/").status_code == 403


def test_the_api_returns_the_same_figures(paced, now) -> None:
    study, (first, second) = paced
    researcher = make_user("researcher")
    api = APIClient()
    api.force_authenticate(researcher)

    response = api.get(f"/api/v1/studies/{study.slug}/dashboard/")

    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["summary"]["judgments"] == 12
    assert body["summary"]["votes_remaining"] == 28
    assert body["estimate"]["status"] == "estimated"
    assert body["estimate"]["window_hours"] == 24
    assert body["estimate"]["finish_at"] is not None
    assert len(body["hourly"]) == 48 and sum(b["judgments"] for b in body["hourly"]) == 9
    assert sum(b["judgments"] for b in body["daily"]) == 12
    assert [(r["rater"], r["judged"]) for r in body["raters"]] == [
        (first.username, 5),
        (second.username, 7),
    ]
    assert body["waiting"]["blocked"] == []


def test_a_large_study_is_served_from_a_snapshot_refreshed_in_the_background(
    paced, monkeypatch
) -> None:
    study, (first, _) = paced
    study.refresh_from_db()  # as a request loads it
    monkeypatch.setattr(dashboard, "LIVE_COMPUTE_SECONDS", 0.0)  # every study counts as large
    scheduled: list[int] = []
    monkeypatch.setattr(
        dashboard,
        "dashboard_refresh_schedule",
        lambda *, study_id: scheduled.append(study_id) or True,
    )

    computed = dashboard.study_dashboard_read(study=study)  # no snapshot yet: computed now
    assert not computed.from_snapshot and computed.board.judgments == 12

    # A judgment arrives; the snapshot, still young, is served as it is.
    judge(study, first, 1)
    young = dashboard.study_dashboard_read(study=study)
    assert young.from_snapshot and not young.refreshing and scheduled == []
    assert young.board.judgments == 12
    assert young.board.generated_at == computed.board.generated_at

    # Older than its refresh age: still served (marked), and a refresh is queued.
    age = timedelta(seconds=dashboard.SNAPSHOT_MIN_AGE_SECONDS + 1)
    old = dashboard.study_dashboard_read(study=study, now=computed.board.generated_at + age)
    assert old.from_snapshot and old.refreshing and old.board.judgments == 12
    assert scheduled == [study.pk]

    # The refresh stores the new figures, which the next read serves.
    refresh_study_dashboard(study.pk)
    fresh = dashboard.study_dashboard_read(study=study)
    assert fresh.from_snapshot and not fresh.refreshing and fresh.board.judgments == 13

    # A change of the study (here its status) makes the snapshot stale whatever its age.
    study.status = StudyStatus.CLOSED
    study.save(update_fields=["status", "updated_at"])
    changed = dashboard.study_dashboard_read(study=study)
    assert changed.refreshing and scheduled == [study.pk, study.pk]


def test_a_refresh_is_queued_once(paced, monkeypatch, django_capture_on_commit_callbacks) -> None:
    study, _ = paced
    started: list[str] = []
    sent: list[int] = []

    class RecordingThread:
        def __init__(self, *, target, args, name, daemon) -> None:
            self.name = name

        def start(self) -> None:
            started.append(self.name)

    monkeypatch.setattr(dashboard.threading, "Thread", RecordingThread)
    monkeypatch.setattr(refresh_study_dashboard, "delay", sent.append)
    conf = refresh_study_dashboard.app.conf

    # In-process (no broker): a thread, off the request.
    monkeypatch.setitem(conf, "task_always_eager", True)
    with django_capture_on_commit_callbacks(execute=True):
        assert dashboard.dashboard_refresh_schedule(study_id=study.pk) is True
        assert dashboard.dashboard_refresh_schedule(study_id=study.pk) is False
    assert started == [f"dashboard-{study.pk}"] and sent == []

    # A finished refresh lets the next stale read queue another; with a broker, a task.
    dashboard.dashboard_snapshot_refresh(study=study)
    monkeypatch.setitem(conf, "task_always_eager", False)
    with django_capture_on_commit_callbacks(execute=True):
        assert dashboard.dashboard_refresh_schedule(study_id=study.pk) is True
        assert dashboard.dashboard_refresh_schedule(study_id=study.pk) is False
    assert sent == [study.pk] and len(started) == 1


def test_votes_beyond_an_items_capacity_do_not_count_twice(now) -> None:
    raters = [make_user(), make_user()]
    study = make_study(items=3, overlap=2, raters=raters)
    for rater in raters:
        judge(study, rater, 3)
    # k lowered after the votes: each item now wants one vote and holds two.
    study.overlap = study.max_overlap = 1
    study.save(update_fields=["overlap", "max_overlap"])

    board = study_dashboard(study=study, now=now)

    assert board.judgments == 6
    assert (board.votes_wanted, board.votes_done, board.votes_remaining) == (3, 3, 0)
    assert board.estimate.status == pace.COMPLETE
