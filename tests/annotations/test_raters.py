"""Who rates a study: invite links (one-time, expiring, revocable, only their hash stored),
lists of names, removing a rater (leases freed at once, judgments kept), crowd links (one
account per participant id, a cap per participant, a completion code only when the server
counts them done, the participant id in the judgments export)."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from annotations import roles, selectors, services
from annotations.errors import (
    ConflictError,
    DomainPermissionError,
    DomainValidationError,
    NotFoundError,
    ParticipantDoneError,
    RaterRemovedError,
)
from annotations.exporting import stream_rows
from annotations.models import (
    Assignment,
    AuditEvent,
    CrowdLink,
    Item,
    Judgment,
    StudyInvite,
    StudyRater,
)
from tests.conftest import api_client_for
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db

User = get_user_model()
GOOD_PASSWORD = "lantern-orbit-5512"


@pytest.fixture
def owner():
    return make_user("researcher")


def audit_actions(study, entity: str) -> list[str]:
    return list(
        AuditEvent.objects.filter(study=study, entity=entity).values_list("action", flat=True)
    )


# --- invite links ----------------------------------------------------------------------------


def test_an_invite_stores_only_its_tokens_hash_and_lets_one_new_rater_in(owner) -> None:
    study = make_study(items=3, overlap=1, owner=owner)
    new = services.invite_create(study=study, actor=owner)
    stored = StudyInvite.objects.get()
    assert new.token not in json.dumps(list(StudyInvite.objects.values()), default=str)
    assert stored.token_hash == services.invite_token_hash(new.token) != new.token
    assert stored.expires_at - timezone.now() > timedelta(days=6, hours=23)

    accepted = services.invite_accept(token=new.token, username="newbie", password=GOOD_PASSWORD)
    assert accepted.account_created and accepted.study == study
    user = User.objects.get(username="newbie")
    assert user.check_password(GOOD_PASSWORD) and roles.is_rater(user)
    assert StudyRater.objects.filter(study=study, rater=user, removed_at=None).exists()
    assert services.pair_next(rater=user, public_id=study.public_id) is not None
    [row] = selectors.study_invite_rows(study=study)
    assert (row.state, row.accepted_by) == ("accepted", "newbie")
    assert audit_actions(study, "invite") == ["created", "accepted"]
    assert audit_actions(study, "rater") == ["added"]

    # One time: the link is spent, for a new person and for a signed-in rater alike.
    with pytest.raises(ConflictError, match="used already"):
        services.invite_accept(token=new.token, username="second", password=GOOD_PASSWORD)
    with pytest.raises(ConflictError, match="used already"):
        services.invite_accept(token=new.token, user=make_user("rater"))
    assert not User.objects.filter(username="second").exists()


def test_an_expired_or_revoked_invite_lets_nobody_in(owner) -> None:
    study = make_study(items=2, overlap=1, owner=owner)
    expired = services.invite_create(study=study, actor=owner, days=1)
    StudyInvite.objects.filter(pk=expired.invite.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(ConflictError, match="expired"):
        services.invite_accept(token=expired.token, username="late", password=GOOD_PASSWORD)

    revoked = services.invite_create(study=study, actor=owner)
    services.invite_revoke(study=study, invite_id=revoked.invite.pk, actor=owner)
    with pytest.raises(ConflictError, match="revoked"):
        services.invite_accept(token=revoked.token, username="gone", password=GOOD_PASSWORD)
    with pytest.raises(ConflictError, match="only a pending invite"):
        services.invite_revoke(study=study, invite_id=revoked.invite.pk, actor=owner)
    with pytest.raises(ConflictError, match="expired"):
        services.invite_revoke(study=study, invite_id=expired.invite.pk, actor=owner)
    with pytest.raises(NotFoundError):
        services.invite_accept(token="not-a-token", username="x", password=GOOD_PASSWORD)

    states = {row.id: row.state for row in selectors.study_invite_rows(study=study)}
    assert states == {expired.invite.pk: "expired", revoked.invite.pk: "revoked"}
    assert not User.objects.filter(username__in=["late", "gone"]).exists()
    assert not StudyRater.objects.filter(study=study).exists()
    assert audit_actions(study, "invite") == ["created", "created", "revoked"]
    with pytest.raises(DomainValidationError):
        services.invite_create(study=study, actor=owner, days=0)


def test_a_refused_password_or_taken_name_writes_nothing_and_keeps_the_invite(owner) -> None:
    study = make_study(items=2, overlap=1, owner=owner)
    new = services.invite_create(study=study, actor=owner)
    for password in ["short", "password123", "12345678901"]:
        with pytest.raises(DomainValidationError) as refused:
            services.invite_accept(token=new.token, username="weakling", password=password)
        assert "password" in refused.value.errors
    make_user("rater", username="taken")
    with pytest.raises(DomainValidationError, match="taken"):
        services.invite_accept(token=new.token, username="taken", password=GOOD_PASSWORD)
    with pytest.raises(DomainValidationError, match="username"):
        services.invite_accept(token=new.token, username="", password=GOOD_PASSWORD)
    assert not User.objects.filter(username="weakling").exists()
    assert not StudyRater.objects.filter(study=study).exists()
    assert selectors.study_invite_rows(study=study)[0].state == "pending"
    # Still usable once the person gets it right.
    services.invite_accept(token=new.token, username="weakling", password=GOOD_PASSWORD)


def test_a_signed_in_rater_is_added_and_a_researcher_is_refused(owner) -> None:
    study = make_study(items=2, overlap=1, owner=owner)
    new = services.invite_create(study=study, actor=owner)
    with pytest.raises(DomainPermissionError):
        services.invite_accept(token=new.token, user=make_user("researcher"))
    rater = make_user("rater")
    accepted = services.invite_accept(token=new.token, user=rater)
    assert not accepted.account_created
    assert StudyRater.objects.filter(study=study, rater=rater).exists()


def test_a_list_of_names_assigns_raters_and_invites_the_others_or_does_nothing(owner) -> None:
    study = make_study(items=2, overlap=1, owner=owner)
    existing = make_user("rater", username="ann")
    make_user("researcher", username="rita")
    with pytest.raises(DomainValidationError) as refused:
        services.raters_invite(
            study=study, actor=owner, lines=["ann", "", "new one", "rita", "bob"]
        )
    assert refused.value.errors == [
        "line 3: 'new one': only letters, digits and @ . + - _ are allowed",
        "line 4: 'rita' is an account without the rater role",
    ]
    assert not StudyInvite.objects.exists() and not StudyRater.objects.exists()

    outcomes = services.raters_invite(
        study=study, actor=owner, lines=["ann", "", "bob", "cleo", "bob", " ann "], days=3
    )
    assert [(o.username, o.outcome) for o in outcomes] == [
        ("ann", "assigned"),
        ("bob", "invited"),
        ("cleo", "invited"),
    ]
    assert StudyRater.objects.filter(study=study, rater=existing).exists()
    bob = outcomes[1]
    assert StudyInvite.objects.get(pk=bob.invite.pk).username == "bob"
    # The invite creates the account it names, whatever the form says.
    services.invite_accept(token=bob.token, username="someone-else", password=GOOD_PASSWORD)
    assert StudyRater.objects.filter(study=study, rater__username="bob").exists()
    assert not User.objects.filter(username="someone-else").exists()
    again = services.raters_invite(study=study, actor=owner, lines=["ann"])
    assert [o.outcome for o in again] == ["already_in"]


# --- removing a rater --------------------------------------------------------------------------


def test_removal_frees_leases_at_once_keeps_judgments_and_stops_the_queue(owner) -> None:
    leaver, stayer = make_user("rater"), make_user("rater")
    study = make_study(items=2, overlap=1, owner=owner, raters=[leaver, stayer])
    judged = services.assignment_next(study=study, rater=leaver)
    services.judgment_submit(assignment_id=judged.pk, rater=leaver, choice="1")
    held = services.assignment_next(study=study, rater=leaver)
    # The other item is the leaver's: nothing left for the stayer while they hold it.
    assert services.assignment_next(study=study, rater=stayer) is None

    services.rater_remove(study=study, username=leaver.username, actor=owner)

    freed = services.assignment_next(study=study, rater=stayer)
    assert freed is not None and freed.item_id == held.item_id
    assert Judgment.objects.filter(rater=leaver).count() == 1
    exported = list(selectors.judgment_export_rows(study=study))
    assert [row["rater"] for row in exported] == [leaver.username]
    assert selectors.study_progress(study=study).judgments == 1

    with pytest.raises(RaterRemovedError):
        services.pair_next(rater=leaver, public_id=study.public_id)
    for refused in (
        lambda: services.judgment_submit(assignment_id=held.pk, rater=leaver, choice="1"),
        lambda: services.assignment_renew(assignment_id=held.pk, rater=leaver),
        lambda: services.assignment_skip(assignment_id=held.pk, rater=leaver),
        lambda: services.judgment_withdraw(assignment_id=judged.pk, rater=leaver),
        lambda: selectors.rater_progress_get(public_id=study.public_id, rater=leaver),
        lambda: selectors.rater_study_get(public_id=study.public_id, rater=leaver),
    ):
        with pytest.raises(RaterRemovedError, match="no longer in this study"):
            refused()
    assert Judgment.objects.filter(rater=leaver).count() == 1
    assert selectors.rater_study_list(rater=leaver) == []

    [event] = AuditEvent.objects.filter(entity="rater", action="removed")
    assert event.actor == owner and event.study == study
    assert event.details == {"leases_released": 1, "judgments_kept": 1}
    with pytest.raises(ConflictError, match="already"):
        services.rater_remove(study=study, username=leaver.username, actor=owner)
    with pytest.raises(NotFoundError):
        services.rater_remove(study=study, username=owner.username, actor=owner)

    # Assigning them again brings them back, audited.
    services.raters_assign(study=study, usernames=[leaver.username], actor=owner)
    assert selectors.rater_progress_get(public_id=study.public_id, rater=leaver).judged_by_me == 1
    assert audit_actions(study, "rater")[-2:] == ["removed", "readded"]


def test_a_removed_raters_open_page_hears_removed_not_an_error(owner) -> None:
    rater = make_user("rater")
    study = make_study(items=3, overlap=1, owner=owner, raters=[rater])
    client = api_client_for(rater)
    pair = client.get(f"/api/v1/queue/next/?study={study.public_id}").json()
    services.rater_remove(study=study, username=rater.username, actor=owner)

    judged = client.post(
        f"/api/v1/assignments/{pair['assignment']}/judgment/", {"choice": "1"}, format="json"
    )
    assert judged.status_code == 409 and judged.json()["code"] == "removed"
    assert "no longer in this study" in judged.json()["detail"]
    following = client.get(f"/api/v1/queue/next/?study={study.public_id}")
    assert following.status_code == 409 and following.json()["code"] == "removed"
    counter = client.get(f"/api/v1/rate/{study.public_id}/progress/")
    assert counter.status_code == 409 and counter.json()["code"] == "removed"
    assert client.get("/api/v1/me/studies/").json() == []

    page = api_client_for(rater)
    page.force_login(rater)
    response = page.get(f"/rate/{study.public_id}/")
    assert response.status_code == 410
    assert b"no longer in this study" in response.content


# --- crowd links ----------------------------------------------------------------------------


def crowd_link(study, owner, n: int = 2, **fields) -> CrowdLink:
    return services.crowd_link_create(study=study, actor=owner, items_per_participant=n, **fields)


def test_a_participant_id_gets_one_account_per_link_and_resumes_it(owner) -> None:
    study = make_study(items=4, overlap=2, owner=owner)
    link = crowd_link(study, owner, completion_code="DONE-42")
    first = services.crowd_participant_join(token=link.token, participant_id="5f3a9c0b12de")
    assert first.created and not first.user.has_usable_password()
    assert roles.is_rater(first.user) and first.user.username.startswith("crowd-")
    assert "5f3a9c0b12de" not in first.user.username
    again = services.crowd_participant_join(token=link.token, participant_id="5f3a9c0b12de")
    assert not again.created and again.user == first.user
    other = services.crowd_participant_join(token=link.token, participant_id="A1B2C3D4E5")
    assert other.user != first.user
    membership = StudyRater.objects.get(rater=first.user)
    assert (membership.crowd_link, membership.participant_id) == (link, "5f3a9c0b12de")
    # Another link of the same study is another account for the same id.
    elsewhere = services.crowd_participant_join(
        token=crowd_link(study, owner).token, participant_id="5f3a9c0b12de"
    )
    assert elsewhere.user != first.user
    assert [r.participants for r in selectors.study_crowd_links(study=study)] == [1, 2]
    added = AuditEvent.objects.filter(entity="rater", action="added", study=study)
    assert added.count() == 3
    assert added.first().details["participant_id"] == "5f3a9c0b12de"


@pytest.mark.parametrize(
    "participant_id",
    ["", "x" * 65, "has space", "-starts-with-dash", "=cmd()", "ünïcode", "a/b", "a;b"],
)
def test_a_bad_participant_id_is_refused_and_writes_nothing(owner, participant_id) -> None:
    study = make_study(items=2, overlap=1, owner=owner)
    link = crowd_link(study, owner)
    with pytest.raises(DomainValidationError, match="participant id"):
        services.crowd_participant_join(token=link.token, participant_id=participant_id)
    assert not StudyRater.objects.exists()
    assert not User.objects.filter(username__startswith="crowd-").exists()


def test_a_closed_link_a_closed_study_and_bad_settings_are_refused(owner) -> None:
    study = make_study(items=2, overlap=1, owner=owner)
    link = crowd_link(study, owner)
    joined = services.crowd_participant_join(token=link.token, participant_id="p1")
    services.study_update(study=study, actor=owner, status="closed")
    with pytest.raises(ConflictError, match="not collecting"):
        services.crowd_participant_join(token=link.token, participant_id="p2")
    # Someone already in may come back (the page then says the study is closed).
    assert services.crowd_participant_join(token=link.token, participant_id="p1").user == (
        joined.user
    )
    services.crowd_link_deactivate(study=study, link_id=link.pk, actor=owner)
    with pytest.raises(ConflictError, match="closed"):
        services.crowd_participant_join(token=link.token, participant_id="p1")
    with pytest.raises(ConflictError, match="inactive already"):
        services.crowd_link_deactivate(study=study, link_id=link.pk, actor=owner)
    with pytest.raises(NotFoundError):
        services.crowd_participant_join(token="nope", participant_id="p1")
    with pytest.raises(DomainValidationError) as refused:
        services.crowd_link_create(
            study=study,
            actor=owner,
            items_per_participant=0,
            param_name="bad name",
            completion_code="no spaces",
        )
    assert set(refused.value.errors) == {"items_per_participant", "param_name", "completion_code"}
    assert audit_actions(study, "crowd_link") == ["created", "deactivated"]


def test_the_queue_caps_a_participant_and_the_code_shows_only_when_done(owner) -> None:
    study = make_study(items=5, overlap=1, owner=owner)
    link = crowd_link(study, owner, n=2, completion_code="C0MPLETE")
    participant = services.crowd_participant_join(token=link.token, participant_id="P1").user
    client = api_client_for(participant)

    def next_pair(exclude=()):
        query = f"study={study.public_id}" + (
            f"&exclude={','.join(map(str, exclude))}" if exclude else ""
        )
        return client.get(f"/api/v1/queue/next/?{query}")

    def counter() -> dict:
        return client.get(f"/api/v1/rate/{study.public_id}/progress/").json()

    assert counter()["completion_code"] is None
    assert (counter()["can_judge"], counter()["item_cap"]) == (2, 2)
    first = next_pair().json()["assignment"]
    # The page prefetches: the second pair is leased within the cap, a third is not.
    second = next_pair([first]).json()["assignment"]
    assert next_pair([first, second]).status_code == 204
    for assignment in (first, second):
        response = client.post(
            f"/api/v1/assignments/{assignment}/judgment/", {"choice": "tie"}, format="json"
        )
        assert response.status_code == 201
        if assignment == first:
            assert counter()["completion_code"] is None
    assert next_pair().status_code == 204
    done = counter()
    assert (done["judged_by_me"], done["can_judge"], done["completion_code"]) == (2, 2, "C0MPLETE")
    assert Judgment.objects.filter(rater=participant).count() == 2


def test_a_participant_gets_the_code_when_the_study_has_nothing_left_for_them(owner) -> None:
    study = make_study(items=1, overlap=1, owner=owner)
    link = crowd_link(study, owner, n=3, completion_code="EMPTY-OK")
    early = services.crowd_participant_join(token=link.token, participant_id="early").user
    late = services.crowd_participant_join(token=link.token, participant_id="late").user
    pair = services.pair_next(rater=early, public_id=study.public_id)
    assert selectors.rater_progress_get(public_id=study.public_id, rater=late).completion_code
    # While the early one holds the last pair, they are not done.
    assert (
        selectors.rater_progress_get(public_id=study.public_id, rater=early).completion_code is None
    )
    services.judgment_submit(assignment_id=pair.assignment_id, rater=early, choice="1")
    row = selectors.rater_progress_get(public_id=study.public_id, rater=early)
    assert (row.judged_by_me, row.completion_code) == (1, "EMPTY-OK")


def test_a_judgment_past_the_cap_is_refused_even_through_an_old_lease(owner) -> None:
    study = make_study(items=3, overlap=1, owner=owner)
    link = crowd_link(study, owner, n=1)
    participant = services.crowd_participant_join(token=link.token, participant_id="P9").user
    stale = services.pair_next(rater=participant, public_id=study.public_id)
    Assignment.objects.filter(pk=stale.assignment_id).update(
        leased_until=timezone.now() - timedelta(minutes=1)
    )
    # Held for a moment, so the queue serves another item instead of taking this one up again.
    Item.objects.filter(pk=stale.item_id).update(held=True)
    fresh = services.pair_next(rater=participant, public_id=study.public_id)
    Item.objects.filter(pk=stale.item_id).update(held=False)
    assert fresh is not None and fresh.item_id != stale.item_id
    services.judgment_submit(assignment_id=fresh.assignment_id, rater=participant, choice="1")
    with pytest.raises(ParticipantDoneError):
        services.judgment_submit(assignment_id=stale.assignment_id, rater=participant, choice="1")
    assert Judgment.objects.filter(rater=participant).count() == 1


def test_the_participant_id_is_in_the_judgments_export(owner) -> None:
    rater = make_user("rater")
    study = make_study(items=2, overlap=2, owner=owner, raters=[rater])
    link = crowd_link(study, owner, n=1)
    participant = services.crowd_participant_join(token=link.token, participant_id="PID-77").user
    for who in (rater, participant):
        pair = services.pair_next(rater=who, public_id=study.public_id)
        services.judgment_submit(assignment_id=pair.assignment_id, rater=who, choice="1")
    rows = list(selectors.judgment_export_rows(study=study))
    assert {row["rater"]: row["participant_id"] for row in rows} == {
        rater.username: "",
        participant.username: "PID-77",
    }
    csv_text = "".join(stream_rows(iter(rows), selectors.JUDGMENT_EXPORT_FIELDS, "csv"))
    assert csv_text.splitlines()[0].startswith("item_id,rater,participant_id,")
    assert ",PID-77," in csv_text
    api = api_client_for(owner)
    jsonl = b"".join(
        api.get(f"/api/v1/studies/{study.slug}/judgments/?format=jsonl").streaming_content
    )
    assert {json.loads(line)["participant_id"] for line in jsonl.splitlines()} == {"", "PID-77"}


# --- create_user -----------------------------------------------------------------------------


def test_create_user_names_the_validators_reason_and_creates_nothing() -> None:
    err = io.StringIO()
    with pytest.raises(CommandError, match="password refused"):
        call_command(
            "create_user", "casey", "--role", "rater", "--password", "casey2024", stderr=err
        )
    assert "too similar to the username" in err.getvalue()
    assert not User.objects.filter(username="casey").exists()
    call_command("create_user", "casey", "--role", "rater", "--password", GOOD_PASSWORD)
    assert User.objects.get(username="casey").check_password(GOOD_PASSWORD)


def test_a_link_with_a_participant_limit_takes_no_new_id_once_full(owner) -> None:
    study = make_study(items=6, overlap=2, owner=owner)
    link = crowd_link(study, owner, max_participants=2)
    first = services.crowd_participant_join(token=link.token, participant_id="p1")
    services.crowd_participant_join(token=link.token, participant_id="p2")
    accounts = User.objects.filter(username__startswith="crowd-").count()
    with pytest.raises(ConflictError, match="takes no new ones") as full:
        services.crowd_participant_join(token=link.token, participant_id="p3")
    assert full.value.errors == {"crowd_link": ["full"]}
    assert User.objects.filter(username__startswith="crowd-").count() == accounts  # no account
    # Those in resume as before; a removed one does not free a place for a new id.
    assert services.crowd_participant_join(token=link.token, participant_id="p1").user == (
        first.user
    )
    services.rater_remove(study=study, username=first.user.username, actor=owner)
    with pytest.raises(ConflictError, match="takes no new ones"):
        services.crowd_participant_join(token=link.token, participant_id="p4")
    # Another link of the study has its own limit.
    assert crowd_link(study, owner).max_participants is None
    created = AuditEvent.objects.filter(entity="crowd_link", action="created").first()
    assert created.details["max_participants"] == 2
    with pytest.raises(DomainValidationError) as refused:
        crowd_link(study, owner, max_participants=0)
    assert set(refused.value.errors) == {"max_participants"}
