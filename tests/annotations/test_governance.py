"""The release gate cannot be bypassed: state changes only through audited services (the admin
included), study ownership, reopening is the release owner's, the audit trail survives, the
database refuses to rewrite the audit log, and each role has a home."""

from __future__ import annotations

import io

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.test import Client, RequestFactory

from annotations import services
from annotations.models import AuditEvent, Judgment, Study, StudyStatus
from tests.conftest import api_client_for
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


def judge_one(study: Study, rater) -> Judgment:
    assignment = services.assignment_next(study=study, rater=rater)
    return services.judgment_submit(assignment_id=assignment.pk, rater=rater, choice="left")


def rejected_study(owner, release_owner) -> Study:
    """A study its release owner rejected at sign-off (no run needed)."""
    from scoring.release import signoff_record

    study = make_study(items=2, overlap=1, owner=owner)
    study = services.study_transition(study=study, target="reconciling", actor=owner)
    study = services.study_transition(study=study, target="ready", actor=owner)
    signoff_record(study=study, actor=release_owner, decision="reject", comment="not convincing")
    study.refresh_from_db()
    assert study.status == StudyStatus.REJECTED
    return study


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- the admin is no back door ----------------------------------------------------------------


def admin_form(study: Study, **changes) -> dict:
    data = {
        "name": study.name,
        "task_type": study.task_type,
        "overlap": study.overlap,
        "max_overlap": study.max_overlap,
        "instructions": study.instructions,
        "base_model": study.base_model,
        "tuned_model": study.tuned_model,
        "gold_rate": study.gold_rate,
        "min_time_ms": "" if study.min_time_ms is None else study.min_time_ms,
        "lease_minutes": study.lease_minutes,
        "queue_order": study.queue_order,
        "settings": "{}",
        "collaborations-TOTAL_FORMS": "0",
        "collaborations-INITIAL_FORMS": "0",
        "collaborations-MIN_NUM_FORMS": "0",
        "collaborations-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("who", ["superuser", "admin_role"])
def test_admin_cannot_set_a_study_signed_off(who, django_user_model) -> None:
    if who == "superuser":
        user = django_user_model.objects.create_superuser("root", "root@example.org", "pw")
    else:
        user = make_user("admin")
    study = make_study(items=2, overlap=1, status="ready")
    request = RequestFactory().get("/")
    request.user = user
    assert "status" in admin.site._registry[Study].get_readonly_fields(request, study)
    client = logged_in(user)
    response = client.post(
        f"/admin/annotations/study/{study.pk}/change/",
        admin_form(study, status="signed_off", name="Renamed in the admin"),
    )
    assert response.status_code == 302, response.content[:2000]
    study.refresh_from_db()
    assert study.status == "ready"  # the field is read-only: ignored
    assert study.name == "Renamed in the admin"  # other fields go through study_update...
    updated = AuditEvent.objects.get(study_slug=study.slug, action="updated")
    assert updated.actor == user and updated.details == {"fields": ["name"]}  # ...audited
    assert not AuditEvent.objects.filter(study_slug=study.slug, after="signed_off").exists()


def test_admin_cannot_delete_or_change_judgments_audit_or_studies(rater) -> None:
    admin_user = make_user("admin")
    study = make_study(items=2, overlap=1, raters=[rater])
    judgment = judge_one(study, rater)
    event = AuditEvent.objects.filter(study_slug=study.slug).first()
    client = logged_in(admin_user)
    for url in (
        f"/admin/annotations/judgment/{judgment.pk}/delete/",
        f"/admin/annotations/auditevent/{event.pk}/delete/",
        f"/admin/annotations/study/{study.pk}/delete/",
        f"/admin/annotations/assignment/{judgment.assignment_id}/delete/",
    ):
        assert client.post(url, {"post": "yes"}).status_code == 403, url
    bulk = client.post(
        "/admin/annotations/judgment/",
        {"action": "delete_selected", "_selected_action": [judgment.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert Judgment.objects.filter(pk=judgment.pk).exists()
    assert client.post(f"/admin/annotations/judgment/{judgment.pk}/change/", {}).status_code == 403
    assert client.get("/admin/annotations/judgment/add/").status_code == 403
    # ...but the admin role reads them.
    assert client.get(f"/admin/annotations/judgment/{judgment.pk}/change/").status_code == 200


def test_admin_actions_close_and_archive_go_through_services() -> None:
    admin_user = make_user("admin")
    study = make_study(items=2, overlap=1)
    client = logged_in(admin_user)
    response = client.post(
        "/admin/annotations/study/", {"action": "close_studies", "_selected_action": [study.pk]}
    )
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.status == "closed"
    closed = AuditEvent.objects.get(study_slug=study.slug, action="status", after="closed")
    assert closed.actor == admin_user
    client.post(
        "/admin/annotations/study/", {"action": "archive_studies", "_selected_action": [study.pk]}
    )
    study.refresh_from_db()
    assert study.archived_at is not None
    assert AuditEvent.objects.filter(study_slug=study.slug, action="archived").count() == 1


# --- a rejection stands; only a release owner reopens ---------------------------------------


def test_researcher_cannot_undo_a_rejection_on_unchanged_evidence(researcher) -> None:
    release_owner = make_user("release_owner")
    study = rejected_study(researcher, release_owner)
    api = api_client_for(researcher)
    move = api.post(
        f"/api/v1/studies/{study.slug}/transition/", {"to": "reconciling"}, format="json"
    )
    assert move.status_code == 409, move.content
    assert "reopen" in move.json()["detail"]
    patch = api.patch(f"/api/v1/studies/{study.slug}/", {"status": "reconciling"}, format="json")
    assert patch.status_code == 409
    assert api.post(f"/api/v1/studies/{study.slug}/reopen/", {"reason": "x"}).status_code == 403
    study.refresh_from_db()
    assert study.status == "rejected"


def test_release_owner_reopens_with_a_reason_and_it_is_audited(researcher) -> None:
    release_owner = make_user("release_owner")
    study = rejected_study(researcher, release_owner)
    api = api_client_for(release_owner)
    assert api.post(f"/api/v1/studies/{study.slug}/reopen/", {"reason": " "}).status_code == 400
    response = api.post(
        f"/api/v1/studies/{study.slug}/reopen/", {"reason": "new guidance"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "reconciling"
    event = AuditEvent.objects.get(study_slug=study.slug, action="reopened")
    assert (event.actor, event.before, event.after) == (release_owner, "rejected", "reconciling")
    assert event.details == {"reason": "new guidance"}
    again = api.post(f"/api/v1/studies/{study.slug}/reopen/", {"reason": "again"}, format="json")
    assert again.status_code == 409  # not signed off or rejected any more


def test_evidence_change_still_moves_a_rejected_study_back(researcher, rater) -> None:
    """The system (no actor) takes a rejected study back when the evidence changed."""
    release_owner = make_user("release_owner")
    study = rejected_study(researcher, release_owner)
    study = services.study_transition(study=study, target="reconciling", reason="evidence")
    assert study.status == "reconciling"


# --- ownership ----------------------------------------------------------------------------------


def test_only_owner_collaborators_and_admins_change_a_study(researcher, settings) -> None:
    study = make_study(items=2, overlap=1, owner=researcher, status="draft")
    other, collaborator = make_user("researcher"), make_user("researcher")
    admin_user = make_user("admin")
    url = f"/api/v1/studies/{study.slug}/"
    other_api = api_client_for(other)
    assert other_api.get(url).status_code == 200  # readable by default
    assert other_api.patch(url, {"name": "mine now"}, format="json").status_code == 403
    assert other_api.post(f"{url}transition/", {"to": "open"}, format="json").status_code == 403
    assert other_api.delete(url).status_code == 403
    assert other_api.post(f"{url}archive/", {}).status_code == 403
    assert other_api.post(f"{url}collaborators/", {"username": other.username}).status_code == 403

    owner_api = api_client_for(researcher)
    added = owner_api.post(f"{url}collaborators/", {"username": collaborator.username})
    assert added.status_code == 200 and added.json()["collaborators"] == [collaborator.username]
    collaborator_api = api_client_for(collaborator)
    assert collaborator_api.patch(url, {"name": "ours"}, format="json").status_code == 200
    assert (
        collaborator_api.post(f"{url}transition/", {"to": "open"}, format="json").status_code == 200
    )
    assert collaborator_api.delete(url).status_code == 403  # the owner's call
    assert api_client_for(admin_user).patch(url, {"name": "x"}, format="json").status_code == 200

    settings.STUDIES_READABLE_BY_ALL_RESEARCHERS = False
    assert other_api.get(url).status_code == 404
    assert study.slug not in [s["slug"] for s in other_api.get("/api/v1/studies/").json()]
    assert collaborator_api.get(url).status_code == 200


def test_pages_follow_the_same_rules(researcher) -> None:
    study = make_study(items=2, overlap=1, owner=researcher)
    other = logged_in(make_user("researcher"))
    assert other.get(f"/studies/{study.slug}/").status_code == 200
    response = other.post(f"/studies/{study.slug}/status/", {"status": "closed"})
    assert response.status_code == 403
    study.refresh_from_db()
    assert study.status == "open"
    assert logged_in(researcher).post(f"/studies/{study.slug}/status/", {"status": "closed"})
    study.refresh_from_db()
    assert study.status == "closed"


# --- deleting and archiving -------------------------------------------------------------------


def test_deleting_a_study_keeps_its_audit_trail(researcher) -> None:
    study = make_study(items=1, overlap=1, owner=researcher)
    slug = study.slug
    api = api_client_for(researcher)
    assert api.delete(f"/api/v1/studies/{slug}/").status_code == 204
    assert not Study.objects.filter(slug=slug).exists()
    actions = list(AuditEvent.objects.filter(study_slug=slug).values_list("action", flat=True))
    assert actions == ["created", "items_imported", "deleted"]
    trail = api_client_for(make_user("release_owner")).get(f"/api/v1/audit/?study={slug}")
    assert [e["action"] for e in trail.json()] == actions
    assert {e["study"] for e in trail.json()} == {slug}
    again = api.post("/api/v1/studies/", {"slug": slug, "name": "n", "task_type": "generation"})
    assert again.status_code == 409  # the slug stays with its trail


def test_delete_with_judgments_or_a_run_is_409_and_archive_is_the_way(researcher, rater) -> None:
    from scoring.models import TrainingRun

    judged = make_study(items=2, overlap=1, owner=researcher, raters=[rater])
    judge_one(judged, rater)
    with_run = make_study(items=1, overlap=1, owner=researcher)
    TrainingRun.objects.create(
        run_id="r-1", payload_sha256="0" * 64, study=with_run, base_model="b", tuned_model="t"
    )
    api = api_client_for(researcher)
    for study in (judged, with_run):
        response = api.delete(f"/api/v1/studies/{study.slug}/")
        assert response.status_code == 409, response.content
        assert "archive" in response.json()["detail"]
        assert Study.objects.filter(pk=study.pk).exists()
    archived = api.post(f"/api/v1/studies/{judged.slug}/archive/", {"reason": "done"})
    assert archived.status_code == 200, archived.content
    judged.refresh_from_db()
    assert judged.archived_at is not None and judged.status == "closed"  # closed: no more pairs
    assert (
        api.patch(f"/api/v1/studies/{judged.slug}/", {"name": "x"}, format="json").status_code
        == 409
    )
    assert judged.slug not in [s["slug"] for s in api.get("/api/v1/studies/").json()]
    event = AuditEvent.objects.get(study_slug=judged.slug, action="archived")
    assert event.actor == researcher and event.details == {"reason": "done"}


# --- the database keeps the log append-only -----------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE annotations_auditevent SET action = 'forged'",
        "DELETE FROM annotations_auditevent",
        "TRUNCATE annotations_auditevent",
        "TRUNCATE scoring_signoff CASCADE",
        "TRUNCATE scoring_signoffinvalidation",
        "TRUNCATE annotations_study CASCADE",
    ],
)
def test_postgres_refuses_to_rewrite_the_audit_log_and_signoffs(statement) -> None:
    make_study(items=1, overlap=1)
    before = AuditEvent.objects.count()
    with (
        pytest.raises(DatabaseError, match="append-only|immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        # Check the deferred foreign keys of the rows just written first: PostgreSQL refuses
        # TRUNCATE while such checks are pending, whatever our triggers say.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(statement)
    assert AuditEvent.objects.count() == before


# --- a home for each role -----------------------------------------------------------------------


def test_release_owner_lands_on_runs_awaiting_sign_off(researcher) -> None:
    from scoring.models import TrainingRun

    study = make_study(items=1, overlap=1, owner=researcher)
    study = services.study_transition(study=study, target="reconciling", actor=researcher)
    services.study_transition(study=study, target="ready", actor=researcher)
    TrainingRun.objects.create(
        run_id="run-ready", payload_sha256="0" * 64, study=study, base_model="b", tuned_model="t"
    )
    client = logged_in(make_user("release_owner"))
    home = client.get("/", follow=True)
    assert home.status_code == 200
    assert home.redirect_chain[-1][0] == "/runs/"
    page = home.content.decode()
    assert "run-ready" in page and "/runs/run-ready/signoff/" in page
    assert 'href="/runs/"' in page  # navigation
    signoff = client.get("/runs/run-ready/signoff/")
    assert signoff.status_code == 200
    assert "Audit trail" in signoff.content.decode()
    assert client.get(f"/studies/{study.slug}/report/").status_code == 200


def test_admin_role_manages_users_in_the_django_admin() -> None:
    out = io.StringIO()
    call_command("create_user", "boss", "--role", "admin", "--password", "pw-123456", stdout=out)
    from django.contrib.auth import get_user_model

    boss = get_user_model().objects.get(username="boss")
    assert boss.is_staff and not boss.is_superuser
    client = logged_in(boss)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/auth/user/").status_code == 200
    assert client.get("/admin/auth/user/add/").status_code == 200
    assert client.get("/admin/annotations/auditevent/").status_code == 200
    rater = make_user("rater")
    page = client.get(f"/admin/auth/user/{rater.pk}/change/").content.decode()
    assert 'name="groups"' in page  # roles are edited here
    assert 'name="is_superuser"' not in page  # but nobody is made a superuser
    from django.contrib.auth.models import Group

    researcher_group = Group.objects.get(name="researcher")
    response = client.post(
        f"/admin/auth/user/{rater.pk}/change/",
        {
            "username": rater.username,
            "is_active": "on",
            "is_superuser": "on",  # read-only for the admin role: ignored
            "groups": [researcher_group.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    rater.refresh_from_db()
    assert not rater.is_superuser
    assert list(rater.groups.values_list("name", flat=True)) == ["researcher"]
    event = AuditEvent.objects.get(entity="user", entity_id=rater.username, action="roles")
    assert event.actor == boss and event.details == {"before": ["rater"], "after": ["researcher"]}


def test_a_user_without_a_role_gets_a_page_with_navigation() -> None:
    from django.contrib.auth import get_user_model

    nobody = get_user_model().objects.create_user("nobody", password="pw-123456")
    response = logged_in(nobody).get("/")
    assert response.status_code == 403
    assert "Log out" in response.content.decode()


def test_create_study_command_sets_an_owner_and_seed_demo_gives_the_researcher_the_study() -> None:
    from django.core.management.base import CommandError

    owner = make_user("researcher")
    call_command(
        "create_study",
        "owned",
        "--name",
        "N",
        "--task",
        "generation",
        "--owner",
        owner.username,
        stdout=io.StringIO(),
    )
    assert Study.objects.get(slug="owned").created_by == owner
    with pytest.raises(CommandError):
        call_command(
            "create_study",
            "x",
            "--name",
            "N",
            "--task",
            "generation",
            "--owner",
            "nobody",
            stdout=io.StringIO(),
        )
    call_command("seed_demo", stdout=io.StringIO())
    demo = Study.objects.get(slug="demo-support-assistant")
    assert demo.created_by is not None and demo.created_by.groups.filter(name="researcher")


def test_archived_study_is_read_only_for_people_but_the_system_may_still_mark_it_stale(
    researcher,
) -> None:
    release_owner = make_user("release_owner")
    study = rejected_study(researcher, release_owner)
    services.study_archive(study=study, actor=researcher)
    from annotations.errors import ConflictError

    with pytest.raises(ConflictError, match="archived"):
        services.study_reopen(study=study, actor=release_owner, reason="x")
    # evidence changed after archiving (e.g. a late score): the rejection goes stale as usual
    study = services.study_transition(study=study, target="reconciling", reason="evidence")
    assert study.status == "reconciling"
