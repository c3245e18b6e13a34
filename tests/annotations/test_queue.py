from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotations import services
from annotations.errors import ConflictError, NotFoundError
from annotations.models import Assignment, AssignmentState, Judgment, Preference, System
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


def judge_all(study, rater, choice="1") -> int:
    count = 0
    while (assignment := services.assignment_next(study=study, rater=rater)) is not None:
        services.judgment_submit(assignment_id=assignment.pk, rater=rater, choice=choice)
        count += 1
    return count


def test_each_item_gets_exactly_k_votes_and_no_rater_judges_twice() -> None:
    raters = [make_user() for _ in range(5)]
    study = make_study(items=8, overlap=3, raters=raters)
    totals = [judge_all(study, r) for r in raters]
    assert sum(totals) == 8 * 3
    for item in study.items.all():
        votes = Judgment.objects.filter(item=item)
        assert votes.count() == 3
        assert votes.values("rater").distinct().count() == 3


def test_live_lease_holds_a_place_and_expired_lease_returns_to_the_pool() -> None:
    first, second = make_user(), make_user()
    study = make_study(items=1, overlap=1, raters=[first, second])
    held = services.assignment_next(study=study, rater=first)
    assert held is not None
    assert services.assignment_next(study=study, rater=second) is None
    Assignment.objects.filter(pk=held.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    taken = services.assignment_next(study=study, rater=second)
    assert taken is not None and taken.item_id == held.item_id
    services.judgment_submit(assignment_id=taken.pk, rater=second, choice="tie")
    # The walker-away comes back too late: the item is complete, their vote would be k+1.
    with pytest.raises(ConflictError):
        services.judgment_submit(assignment_id=held.pk, rater=first, choice="1")
    assert Judgment.objects.filter(item_id=held.item_id).count() == 1


def test_next_returns_the_held_lease_unless_excluded() -> None:
    rater = make_user()
    study = make_study(items=5, overlap=1, raters=[rater])
    first = services.assignment_next(study=study, rater=rater)
    assert services.assignment_next(study=study, rater=rater).pk == first.pk
    prefetched = services.assignment_next(study=study, rater=rater, exclude_ids=[first.pk])
    assert prefetched.pk != first.pk
    with pytest.raises(ConflictError):
        services.assignment_next(study=study, rater=rater, exclude_ids=[first.pk, prefetched.pk])


def test_skipped_items_are_not_offered_again_and_free_the_place() -> None:
    rater, other = make_user(), make_user()
    study = make_study(items=1, overlap=1, raters=[rater, other])
    assignment = services.assignment_next(study=study, rater=rater)
    services.assignment_skip(assignment_id=assignment.pk, rater=rater)
    assert services.assignment_next(study=study, rater=rater) is None
    assert services.assignment_next(study=study, rater=other) is not None


def test_second_submission_is_refused_and_counts_once() -> None:
    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater])
    assignment = services.assignment_next(study=study, rater=rater)
    services.judgment_submit(assignment_id=assignment.pk, rater=rater, choice="1")
    with pytest.raises(ConflictError):
        services.judgment_submit(assignment_id=assignment.pk, rater=rater, choice="2")
    assert Judgment.objects.count() == 1


@pytest.mark.parametrize(
    ("left", "choice", "preferred"),
    [
        (System.BASE, "1", Preference.BASE),
        (System.BASE, "2", Preference.TUNED),
        (System.TUNED, "1", Preference.TUNED),
        (System.TUNED, "2", Preference.BASE),
        (System.TUNED, "tie", Preference.TIE),
        (System.BASE, "both_bad", Preference.BOTH_BAD),
    ],
)
def test_preferred_system_is_resolved_server_side(left, choice, preferred) -> None:
    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater])
    assignment = services.assignment_next(study=study, rater=rater)
    Assignment.objects.filter(pk=assignment.pk).update(left_system=left)
    judgment = services.judgment_submit(assignment_id=assignment.pk, rater=rater, choice=choice)
    assert judgment.preferred == preferred
    assert judgment.left_system == left


def test_someone_elses_assignment_is_not_found() -> None:
    rater, intruder = make_user(), make_user()
    study = make_study(items=1, overlap=2, raters=[rater, intruder])
    assignment = services.assignment_next(study=study, rater=rater)
    with pytest.raises(NotFoundError):
        services.judgment_submit(assignment_id=assignment.pk, rater=intruder, choice="1")


def test_non_member_and_closed_study() -> None:
    member, outsider = make_user(), make_user()
    study = make_study(items=1, raters=[member], status="draft")
    with pytest.raises(ConflictError):
        services.assignment_next(study=study, rater=member)
    study = services.study_update(study=study, status="open")
    with pytest.raises(NotFoundError):
        services.assignment_next(study=study, rater=outsider)


def test_fast_judgments_are_flagged() -> None:
    rater = make_user()
    study = make_study(items=2, overlap=1, raters=[rater], min_time_ms=2000)
    a = services.assignment_next(study=study, rater=rater)
    fast = services.judgment_submit(assignment_id=a.pk, rater=rater, choice="1", time_ms=400)
    b = services.assignment_next(study=study, rater=rater)
    slow = services.judgment_submit(assignment_id=b.pk, rater=rater, choice="1", time_ms=5000)
    assert fast.flagged_fast and not slow.flagged_fast


def test_gold_items_are_mixed_in_and_exempt_from_k() -> None:
    raters = [make_user() for _ in range(3)]
    study = make_study(items=4, overlap=1, raters=raters, gold=2, gold_rate=0.5)
    for rater in raters:
        judge_all(study, rater)
    gold_votes = Judgment.objects.filter(item__is_gold=True)
    # Every rater meets every gold item once, while regular items stop at k=1.
    assert gold_votes.count() == 2 * 3
    assert Judgment.objects.filter(item__is_gold=False).count() == 4


def test_no_gold_when_rate_is_zero() -> None:
    rater = make_user()
    study = make_study(items=2, overlap=1, raters=[rater], gold=2, gold_rate=0.0)
    judge_all(study, rater)
    assert not Judgment.objects.filter(item__is_gold=True).exists()


def test_priority_first_then_each_rater_has_an_own_order() -> None:
    raters = [make_user() for _ in range(6)]
    study = make_study(items=30, overlap=6, raters=raters)
    top = study.items.order_by("id")[7]
    top.priority = 10
    top.save()
    orders = []
    for rater in raters:
        first = services.assignment_next(study=study, rater=rater)
        assert first.item_id == top.pk
        services.judgment_submit(assignment_id=first.pk, rater=rater, choice="tie")
        seq = []
        while (a := services.assignment_next(study=study, rater=rater)) is not None:
            seq.append(a.item_id)
            services.judgment_submit(assignment_id=a.pk, rater=rater, choice="tie")
        orders.append(tuple(seq))
    assert len(set(orders)) == len(orders)


def test_raters_with_small_multipliers_still_get_different_orders() -> None:
    """(id * a + b) mod P alone walks neighbouring ids in id order for a = 1 and a = 2 alike."""
    from annotations.models import StudyRater

    raters = [make_user() for _ in range(2)]
    study = make_study(items=12, overlap=2, raters=raters)
    for multiplier, rater in enumerate(raters, start=1):
        StudyRater.objects.filter(study=study, rater=rater).update(
            order_multiplier=multiplier, order_offset=123_456_789
        )
    orders = []
    for rater in raters:
        seq = []
        while (a := services.assignment_next(study=study, rater=rater)) is not None:
            seq.append(a.item_id)
            services.judgment_submit(assignment_id=a.pk, rater=rater, choice="tie")
        assert sorted(seq) == sorted(study.items.values_list("id", flat=True))
        orders.append(seq)
    assert orders[0] != orders[1]
    assert orders[0] != sorted(orders[0])


def test_left_side_is_balanced_over_many_assignments() -> None:
    raters = [make_user() for _ in range(4)]
    study = make_study(items=500, overlap=4, raters=raters)
    lefts = []
    for rater in raters:
        held = []
        while True:
            a = services.assignment_next(study=study, rater=rater, exclude_ids=[])
            if a is None:
                break
            lefts.append(a.left_system)
            Assignment.objects.filter(pk=a.pk).update(state=AssignmentState.SKIPPED)
            held.append(a.pk)
    assert len(lefts) == 2000
    rate = sum(1 for s in lefts if s == System.BASE) / len(lefts)
    assert 0.45 <= rate <= 0.55


def test_split_votes_queue_one_more_rater_up_to_the_maximum() -> None:
    raters = [make_user() for _ in range(5)]
    study = make_study(items=1, overlap=2, max_overlap=4, raters=raters)
    item = study.items.get()

    def vote(rater, preferred: str) -> None:
        a = services.assignment_next(study=study, rater=rater)
        choice = "tie" if preferred == "tie" else ("1" if a.left_system == preferred else "2")
        services.judgment_submit(assignment_id=a.pk, rater=rater, choice=choice)

    vote(raters[0], "base")
    vote(raters[1], "tuned")  # 1-1: split, a third rater is queued
    item.refresh_from_db()
    assert item.extra_votes == 1
    vote(raters[2], "tie")  # 1-1-1: still split, a fourth (the maximum)
    item.refresh_from_db()
    assert item.extra_votes == 2
    vote(raters[3], "tuned")  # 4 votes = max_overlap: no more
    item.refresh_from_db()
    assert item.extra_votes == 2
    assert services.assignment_next(study=study, rater=raters[4]) is None


def test_agreeing_votes_do_not_extend_overlap() -> None:
    raters = [make_user() for _ in range(3)]
    study = make_study(items=1, overlap=2, max_overlap=4, raters=raters)
    for rater in raters[:2]:
        a = services.assignment_next(study=study, rater=rater)
        services.judgment_submit(assignment_id=a.pk, rater=rater, choice="tie")
    assert study.items.get().extra_votes == 0
    assert services.assignment_next(study=study, rater=raters[2]) is None
