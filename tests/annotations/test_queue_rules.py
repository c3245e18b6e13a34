"""The queue's rules are written once (annotations.queue_rules) in three forms; the SQL, ORM
and Python forms must agree on every case."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotations import queue_sql
from annotations.models import Assignment, Item
from annotations.queue_rules import (
    has_room,
    has_room_sql,
    holds_a_place_q,
    holds_a_place_sql,
    item_capacity,
    item_capacity_expr,
)
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


def test_holds_a_place_is_the_same_rule_in_sql_and_orm() -> None:
    raters = [make_user() for _ in range(5)]
    study = make_study(items=1, overlap=3, raters=raters)
    item = study.items.get()
    now = timezone.now()
    cases = [
        ("judged", now - timedelta(hours=1), True),  # judged: always, lease time aside
        ("leased", now + timedelta(minutes=5), True),
        ("leased", now - timedelta(seconds=1), False),  # expired
        ("skipped", now + timedelta(minutes=5), False),
        ("skipped", now - timedelta(minutes=5), False),
    ]
    expected = set()
    for rater, (state, until, holds) in zip(raters, cases, strict=True):
        a = Assignment.objects.create(
            item=item, rater=rater, left_system="base", state=state, leased_until=until
        )
        if holds:
            expected.add(a.pk)
    by_orm = set(Assignment.objects.filter(holds_a_place_q(now=now)).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.id FROM {queue_sql.ASSIGNMENT} c WHERE {holds_a_place_sql('c')}",  # noqa: S608
            [queue_sql.db_time(now)],
        )
        by_sql = {row[0] for row in cursor.fetchall()}
    assert by_orm == by_sql == expected


def test_capacity_and_room_agree_in_sql_orm_and_python() -> None:
    raters = [make_user() for _ in range(3)]
    study = make_study(items=3, overlap=2, max_overlap=4, raters=raters)
    items = list(study.items.order_by("id"))
    Item.objects.filter(pk=items[1].pk).update(extra_votes=1)
    now = timezone.now()
    # items[0]: 2 places held (full at k = 2); items[1]: 2 held, one extra vote (room);
    # items[2]: 1 held (room).
    for item, n in zip(items, [2, 2, 1], strict=True):
        for rater in raters[:n]:
            Assignment.objects.create(
                item=item, rater=rater, left_system="base", state="judged", leased_until=now
            )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.id FROM {queue_sql.ITEM} i WHERE i.study_id = %s "  # noqa: S608
            f"AND {has_room_sql(item='i')} ORDER BY i.id",
            [study.pk, queue_sql.db_time(now), study.overlap],
        )
        by_sql = [row[0] for row in cursor.fetchall()]
    by_python = [
        item.pk
        for item, held in zip(
            Item.objects.filter(study=study).order_by("id"), [2, 2, 1], strict=True
        )
        if has_room(
            places_held=held,
            capacity=item_capacity(
                overlap=study.overlap, extra_votes=item.extra_votes, is_gold=item.is_gold
            ),
        )
    ]
    capacity_by_orm = list(
        Item.objects.filter(study=study)
        .order_by("id")
        .annotate(cap=item_capacity_expr(overlap=study.overlap))
        .values_list("cap", flat=True)
    )
    assert by_sql == by_python == [items[1].pk, items[2].pk]
    assert capacity_by_orm == [2, 3, 2]
    assert item_capacity(overlap=2, extra_votes=5, is_gold=True) is None
    assert has_room(places_held=99, capacity=None)
