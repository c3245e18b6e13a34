"""The queue under concurrent raters, on PostgreSQL (row locks with SKIP LOCKED). Runs in CI."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from annotations import services
from annotations.errors import ConflictError
from annotations.models import Assignment, AssignmentState, CrowdLink, Judgment
from tests.factories import make_study, make_user

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_in_threads(count: int, work) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def runner(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_fifty_concurrent_raters_never_exceed_k() -> None:
    assert connection.vendor == "postgresql"
    raters = [make_user() for _ in range(50)]
    study = make_study(items=40, overlap=3, raters=raters)

    def rate_until_empty(index: int) -> None:
        rater = raters[index]
        while True:
            assignment = services.assignment_next(study=study, rater=rater)
            if assignment is None:
                return
            try:
                services.judgment_submit(assignment_id=assignment.pk, rater=rater, choice="1")
            except ConflictError:
                continue

    errors = run_in_threads(50, rate_until_empty)
    assert errors == []
    per_item = Counter(Judgment.objects.values_list("item_id", flat=True))
    assert max(per_item.values()) == 3
    assert sum(per_item.values()) == 40 * 3
    pairs = Counter(Judgment.objects.values_list("item_id", "rater_id"))
    assert max(pairs.values()) == 1


def test_one_place_many_raters_only_one_lease() -> None:
    raters = [make_user() for _ in range(30)]
    study = make_study(items=1, overlap=1, raters=raters)
    got: list[int] = []

    def grab(index: int) -> None:
        assignment = services.assignment_next(study=study, rater=raters[index])
        if assignment is not None:
            got.append(assignment.pk)

    assert run_in_threads(30, grab) == []
    assert len(got) == 1
    assert Assignment.objects.filter(state=AssignmentState.LEASED).count() == 1


def test_double_submit_race_counts_once() -> None:
    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater])
    assignment = services.assignment_next(study=study, rater=rater)
    outcomes: list[str] = []

    def submit(index: int) -> None:
        try:
            services.judgment_submit(assignment_id=assignment.pk, rater=rater, choice="1")
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    assert run_in_threads(10, submit) == []
    assert sorted(outcomes) == ["conflict"] * 9 + ["ok"]
    assert Judgment.objects.count() == 1


def test_a_crowd_participants_simultaneous_submissions_stop_at_the_cap() -> None:
    owner = make_user("researcher")
    study = make_study(items=6, overlap=1, owner=owner)
    link = services.crowd_link_create(study=study, actor=owner, items_per_participant=2)
    participant = services.crowd_participant_join(token=link.token, participant_id="race").user
    first = services.pair_next(rater=participant, slug=study.slug)
    second = services.pair_next(
        rater=participant, slug=study.slug, exclude_ids=[first.assignment_id]
    )
    assert first is not None and second is not None
    # Two pairs held at a cap of one (as two requests racing past the queue's check could
    # leave them), each judged at once in its own thread.
    CrowdLink.objects.filter(pk=link.pk).update(items_per_participant=1)
    leases = [first.assignment_id, second.assignment_id]

    def submit(index: int) -> None:
        services.judgment_submit(assignment_id=leases[index], rater=participant, choice="1")

    errors = run_in_threads(2, submit)
    assert Judgment.objects.filter(rater=participant).count() == 1
    assert [type(e).__name__ for e in errors] == ["ParticipantDoneError"]


def test_simultaneous_new_participants_stop_at_the_links_limit() -> None:
    from annotations.models import StudyRater

    owner = make_user("researcher")
    study = make_study(items=6, overlap=1, owner=owner)
    link = services.crowd_link_create(
        study=study, actor=owner, items_per_participant=1, max_participants=3
    )

    def join(index: int) -> None:
        services.crowd_participant_join(token=link.token, participant_id=f"p{index}")

    errors = run_in_threads(10, join)
    assert StudyRater.objects.filter(crowd_link=link).count() == 3
    assert [type(e).__name__ for e in errors] == ["ConflictError"] * 7
