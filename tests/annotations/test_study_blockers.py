"""Why a study cannot finish: the study page's "why stuck" box and `blocked` in the progress
API, computed in a fixed number of aggregate queries."""

from __future__ import annotations

import pytest
from django.test import Client

from annotations import selectors, services
from annotations.models import Item
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


def vote_all(study, rater, preference_for) -> int:
    """The rater judges every pair the queue serves; `preference_for(item)` says which system
    (or "tie") they prefer. Returns how many they judged."""
    n = 0
    while (a := services.assignment_next(study=study, rater=rater)) is not None:
        wanted = preference_for(a.item)
        choice = "tie" if wanted == "tie" else ("1" if a.left_system == wanted else "2")
        services.judgment_submit(assignment_id=a.pk, rater=rater, choice=choice, time_ms=3000)
        n += 1
    return n


@pytest.fixture
def split_study():
    """k = 3, max_overlap = 5, four raters. Items 0-3 split (base, tuned, tie, then tie) and ask
    for a fifth vote that none of the four raters may give; items 4-5 agree after three."""
    raters = [make_user() for _ in range(4)]
    study = make_study(items=6, overlap=3, max_overlap=5, raters=raters)
    split = set(study.items.order_by("id").values_list("pk", flat=True)[:4])

    def by(preference):
        return lambda item: preference if item.pk in split else "tuned"

    for rater, preference in zip(raters, ["base", "tuned", "tie", "tie"], strict=True):
        vote_all(study, rater, by(preference))
    return study, split


def test_split_items_waiting_for_a_rater_who_does_not_exist(split_study) -> None:
    study, split = split_study
    assert set(Item.objects.filter(extra_votes=2).values_list("pk", flat=True)) == split

    blockers = selectors.study_blockers(study=study)

    assert blockers.items_open == 4
    assert blockers.rateable == 0 and blockers.stuck
    assert [b.reason for b in blockers.blocked] == ["raters_exhausted"]
    (blocker,) = blockers.blocked
    assert blocker.items == 4
    assert blocker.message == (
        "4 items need a vote from a rater who has not judged them yet, but all 4 assigned "
        "raters already have (judged or skipped them)."
    )
    assert "Assign more raters" in blocker.action and "max_overlap" in blocker.action


def test_adding_a_rater_unblocks_and_their_votes_finish_the_study(split_study) -> None:
    study, split = split_study
    fifth = make_user()
    services.raters_assign(study=study, usernames=[fifth.username])

    blockers = selectors.study_blockers(study=study)
    assert blockers.blocked == [] and blockers.rateable == 4 and not blockers.stuck

    # While the fifth rater holds a pair, that item waits on the lease, not on raters.
    lease = services.assignment_next(study=study, rater=fifth)
    blockers = selectors.study_blockers(study=study)
    assert [(b.reason, b.items) for b in blockers.blocked] == [("leases_in_flight", 1)]
    assert blockers.rateable == 3
    services.judgment_submit(assignment_id=lease.pk, rater=fifth, choice="tie")

    assert vote_all(study, fifth, lambda item: "tuned") == 3
    blockers = selectors.study_blockers(study=study)
    assert blockers.items_open == 0 and blockers.blocked == []


def test_lowering_max_overlap_trims_the_extra_votes_and_unblocks(split_study, researcher):
    study, split = split_study
    services.study_update(study=study, actor=researcher, max_overlap=4)

    assert set(Item.objects.filter(study=study).values_list("extra_votes", flat=True)) == {0, 1}
    blockers = selectors.study_blockers(study=study)
    assert blockers.items_open == 0 and blockers.blocked == []


def test_k_larger_than_the_raters_who_are_left(db) -> None:
    raters = [make_user() for _ in range(2)]
    study = make_study(items=3, overlap=3, raters=raters)
    vote_all(study, raters[0], lambda item: "tuned")

    blockers = selectors.study_blockers(study=study)
    (blocker,) = blockers.blocked
    assert blocker.reason == "raters_short" and blocker.items == 3
    assert blocker.message == (
        "3 items need more votes than the assigned raters who have not judged them yet can "
        "give (2 raters assigned)."
    )
    assert blocker.action == "Assign more raters, or lower k (now 3)."
    # The second rater can still add a vote to each: the items are short, not unservable.
    assert blockers.rateable == 3 and not blockers.stuck


def test_a_skip_uses_up_a_rater(db) -> None:
    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater])
    assignment = services.assignment_next(study=study, rater=rater)
    services.assignment_skip(assignment_id=assignment.pk, rater=rater)

    (blocker,) = selectors.study_blockers(study=study).blocked
    assert blocker.reason == "raters_exhausted"
    assert blocker.message == (
        "1 item needs a vote from a rater who has not judged it yet, but the only assigned "
        "rater already has (judged or skipped it)."
    )


def test_not_open_no_raters_held_and_excluded(db, researcher) -> None:
    study = make_study(items=5, overlap=1, status="draft")
    items = list(study.items.order_by("id"))
    Item.objects.filter(pk=items[0].pk).update(held=True, hold_reason="names its model")
    Item.objects.filter(pk=items[1].pk).update(excluded=True)

    blockers = selectors.study_blockers(study=study)
    assert blockers.items_open == 4  # the excluded item wants nothing
    assert [(b.reason, b.items) for b in blockers.blocked] == [
        ("study_not_open", 4),
        ("no_raters", 3),
        ("held", 1),
    ]
    assert blockers.blocked[0].action == "Set the status to open (collecting)."
    assert blockers.blocked[1].action == "Assign raters."
    # The progress total leaves the excluded item out too, so the study can reach 100%.
    progress = selectors.study_progress(study=study)
    assert progress.excluded_items == 1 and progress.votes_wanted == 4


def test_a_study_with_raters_at_work_is_not_blocked(db) -> None:
    study = make_study(items=6, overlap=2, raters=[make_user(), make_user()])
    blockers = selectors.study_blockers(study=study)
    assert blockers.items_open == 6 and blockers.rateable == 6 and blockers.blocked == []


def test_queries_do_not_grow_with_the_study(django_assert_max_num_queries, split_study) -> None:
    study, _ = split_study
    with django_assert_max_num_queries(3):
        selectors.study_blockers(study=study)
    big = make_study(items=120, overlap=3, max_overlap=5, raters=[make_user() for _ in range(2)])
    services.assignment_next(study=big, rater=big.memberships.first().rater)
    with django_assert_max_num_queries(3):
        assert selectors.study_blockers(study=big).blocked[0].items == 120


def test_progress_api_lists_what_blocks(split_study, researcher_api) -> None:
    study, _ = split_study
    body = researcher_api.get(f"/api/v1/studies/{study.slug}/progress/").json()
    assert body["blocked"] == [
        {
            "reason": "raters_exhausted",
            "items": 4,
            "message": (
                "4 items need a vote from a rater who has not judged them yet, but all 4 "
                "assigned raters already have (judged or skipped them)."
            ),
            "action": (
                "Assign more raters, or lower max_overlap (these are split items asking for "
                "extra votes)."
            ),
        }
    ]
    assert body["items_open"] == 4 and body["items_rateable"] == 0


def test_study_page_says_why_it_is_stuck(split_study, researcher) -> None:
    study, _ = split_study
    client = Client()
    client.force_login(researcher)
    page = client.get(f"/studies/{study.slug}/").content.decode()
    assert 'id="why-stuck"' in page
    assert "4 items need a vote from a rater who has not judged them yet" in page
    assert "Assign more raters" in page

    services.raters_assign(study=study, usernames=[make_user().username])
    page = client.get(f"/studies/{study.slug}/").content.decode()
    assert "need a vote from a rater" not in page
    assert "4 items can be rated by assigned raters now" in page


def test_a_study_past_collecting_says_how_to_reopen(db, researcher) -> None:
    study = make_study(items=2, overlap=1, raters=[make_user()])
    services.study_update(study=study, actor=researcher, status="reconciling")
    study = services.study_update(study=study, actor=researcher, status="ready")

    (blocker,) = selectors.study_blockers(study=study).blocked
    assert blocker.reason == "study_not_open" and blocker.items == 2
    assert blocker.message.startswith("The study is ready for sign-off: raters are served")
    assert blocker.action == "To collect more votes, move it back to reconciling, then to open."
