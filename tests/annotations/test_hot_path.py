"""The rater loop's hot path: token auth with roles in one query, the SQL queue's rarer branches
(own expired lease, windows that are full) and a ceiling on queries per request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotations import services
from annotations.models import Assignment, Item, Judgment, StudyRater
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def statements(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)]


def test_token_auth_reads_user_and_roles_in_one_query() -> None:
    rater = make_user("rater")
    study = make_study(items=3, overlap=1, raters=[rater])
    client = token_client(rater)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/api/v1/queue/next/?study={study.slug}")
    assert response.status_code == 200
    auth = [sql for sql in statements(ctx) if "authtoken_token" in sql]
    assert len(auth) == 1
    assert not [sql for sql in statements(ctx) if "auth_group" in sql and sql not in auth]


def test_token_auth_refuses_bad_tokens_inactive_users_and_wrong_roles() -> None:
    rater = make_user("rater")
    researcher = make_user("researcher")
    study = make_study(items=2, overlap=1, raters=[rater])
    path = f"/api/v1/queue/next/?study={study.slug}"

    anonymous = APIClient()
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    refused = anonymous.get(path)
    # 403, not 401: the first authenticator (session) sends no WWW-Authenticate challenge.
    assert refused.status_code == 403
    assert "invalid token" in refused.content.decode().lower()

    # A researcher has no rater role: 403, roles read with the token.
    assert token_client(researcher).get(path).status_code == 403

    client = token_client(rater)
    rater.is_active = False
    rater.save(update_fields=["is_active"])
    inactive = client.get(path)
    assert inactive.status_code == 403
    assert "inactive" in inactive.content.decode().lower()

    # A user in no group at all still authenticates (LEFT JOIN) and is refused by role.
    roleless = make_user("rater")
    roleless.groups.clear()
    assert token_client(roleless).get(path).status_code == 403


def test_next_and_submit_stay_within_their_query_budget() -> None:
    rater = make_user("rater")
    study = make_study(items=4, overlap=2, max_overlap=3, raters=[rater])
    client = token_client(rater)

    def next_pair() -> tuple[int, list[str]]:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(f"/api/v1/queue/next/?study={study.slug}")
        assert response.status_code == 200
        return response.json()["assignment"], statements(ctx)

    # The first request also builds the rater's queue memo (its ids, then storing them).
    assignment, first = next_pair()
    assert len(first) <= 6, first
    client.post(f"/api/v1/assignments/{assignment}/judgment/", {"choice": "1"}, format="json")
    # Then: auth + roles, study + membership + leases + memo, pick (with texts), recount + insert
    assignment, steady = next_pair()
    assert len(steady) <= 4, steady
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(
            f"/api/v1/assignments/{assignment}/judgment/", {"choice": "1"}, format="json"
        )
    assert response.status_code == 201
    # auth + roles, lock, judgment, assignment state, vote split check, evidence listeners
    assert len(statements(ctx)) <= 6, statements(ctx)


def test_an_own_expired_lease_is_taken_up_again_with_the_same_sides() -> None:
    rater = make_user()
    study = make_study(items=1, overlap=1, raters=[rater])
    first = services.assignment_next(study=study, rater=rater)
    Assignment.objects.filter(pk=first.pk).update(
        leased_until=timezone.now() - timedelta(minutes=1)
    )
    again = services.assignment_next(study=study, rater=rater)
    assert again.pk == first.pk
    assert again.left_system == first.left_system
    assert again.leased_until > timezone.now()
    services.judgment_submit(assignment_id=again.pk, rater=rater, choice="1")
    assert Judgment.objects.filter(item_id=first.item_id).count() == 1


def test_an_own_expired_lease_on_an_item_completed_by_others_is_not_offered() -> None:
    walker, other = make_user(), make_user()
    study = make_study(items=1, overlap=1, raters=[walker, other])
    stale = services.assignment_next(study=study, rater=walker)
    Assignment.objects.filter(pk=stale.pk).update(
        leased_until=timezone.now() - timedelta(minutes=1)
    )
    taken = services.assignment_next(study=study, rater=other)
    services.judgment_submit(assignment_id=taken.pk, rater=other, choice="2")
    assert services.assignment_next(study=study, rater=walker) is None


def test_the_queue_looks_past_windows_whose_items_are_all_full(monkeypatch) -> None:
    monkeypatch.setattr(services.rating, "QUEUE_WINDOWS", (1, 2, None))
    first, second = make_user(), make_user()
    study = make_study(items=10, overlap=1, raters=[first, second])
    judged_by_first = []
    for _ in range(7):
        a = services.assignment_next(study=study, rater=first)
        services.judgment_submit(assignment_id=a.pk, rater=first, choice="tie")
        judged_by_first.append(a.item_id)
    offered = []
    while (a := services.assignment_next(study=study, rater=second)) is not None:
        offered.append(a.item_id)
        services.judgment_submit(assignment_id=a.pk, rater=second, choice="tie")
    all_items = set(study.items.values_list("pk", flat=True))
    assert sorted(offered) == sorted(all_items - set(judged_by_first))
    assert Judgment.objects.filter(item__study=study).count() == 10


def test_next_over_the_api_resumes_the_held_lease_and_honours_exclude() -> None:
    rater = make_user()
    study = make_study(items=3, overlap=1, raters=[rater])
    client = token_client(rater)
    first = client.get(f"/api/v1/queue/next/?study={study.slug}").json()
    again = client.get(f"/api/v1/queue/next/?study={study.slug}").json()
    assert again["assignment"] == first["assignment"]
    assert again["responses"] == first["responses"]
    other = client.get(f"/api/v1/queue/next/?study={study.slug}&exclude={first['assignment']}")
    assert other.json()["assignment"] != first["assignment"]


def test_a_fresh_memo_spares_ordering_the_whole_pool() -> None:
    rater = make_user()
    study = make_study(items=100, overlap=1, raters=[rater])
    first = services.assignment_next(study=study, rater=rater)
    services.judgment_submit(assignment_id=first.pk, rater=rater, choice="1")
    membership = StudyRater.objects.get(study=study, rater=rater)
    memo = [int(i) for i in membership.queue_window.split(",")]
    assert len(memo) == services.QUEUE_MEMO_SIZE and memo[0] == first.item_id
    with CaptureQueriesContext(connection) as ctx:
        second = services.pair_next(slug=study.slug, rater=rater)
    assert second.item_id == memo[1]  # the rater's order, as if the pool were ordered again
    assert not [s for s in statements(ctx) if "SELECT w.id" in s or s.startswith("UPDATE")]


def test_the_memo_never_serves_an_item_that_stopped_being_available() -> None:
    rater, other = make_user(), make_user()
    study = make_study(items=80, overlap=1, raters=[rater, other])
    first = services.assignment_next(study=study, rater=rater)
    services.judgment_submit(assignment_id=first.pk, rater=rater, choice="1")
    memo = [
        int(i)
        for i in StudyRater.objects.get(study=study, rater=rater).queue_window.split(",")
        if int(i) != first.item_id
    ]
    held, taken = memo[: len(memo) // 2], memo[len(memo) // 2 :]
    Item.objects.filter(pk__in=held).update(held=True)
    for item_id in taken:  # filled by someone else (k = 1)
        Assignment.objects.create(
            item_id=item_id,
            rater=other,
            left_system="base",
            state="judged",
            leased_until=timezone.now(),
        )
    served = services.assignment_next(study=study, rater=rater)
    assert served is not None and served.item_id not in memo
    assert not served.item.held


def test_an_expired_memo_sees_new_priorities(monkeypatch) -> None:
    rater = make_user()
    study = make_study(items=100, overlap=1, raters=[rater])
    first = services.assignment_next(study=study, rater=rater)
    services.judgment_submit(assignment_id=first.pk, rater=rater, choice="1")
    memo = StudyRater.objects.get(study=study, rater=rater).queue_window.split(",")
    urgent = study.items.exclude(pk__in=[int(i) for i in memo]).first()
    Item.objects.filter(pk=urgent.pk).update(priority=5)
    monkeypatch.setattr(services.rating, "QUEUE_MEMO_SECONDS", 0)
    assert services.assignment_next(study=study, rater=rater).item_id == urgent.pk
