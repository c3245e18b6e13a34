"""The pages of who rates a study: the researcher's raters page (invite links shown once, their
states, revoke, remove, crowd links) and the pages an invite or crowd link opens."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from annotations import services
from annotations.models import AuditEvent, StudyInvite, StudyRater
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db

User = get_user_model()
GOOD_PASSWORD = "lantern-orbit-5512"


@pytest.fixture
def owner():
    return make_user("researcher")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def invite_links(html: str) -> list[str]:
    return re.findall(r'class="invite-link" value="([^"]+)"', html)


def test_the_researcher_makes_invite_links_sees_them_once_and_their_states(owner) -> None:
    study = make_study(items=2, overlap=1, owner=owner)
    make_user("rater", username="ann")
    client = signed_in(owner)
    response = client.post(
        f"/studies/{study.slug}/raters/invites/", {"usernames": "ann\nbob\ncleo", "days": "7"}
    )
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    html = response.content.decode()
    links = invite_links(html)
    assert len(links) == 2 and all("/invite/" in link for link in links)
    assert "an existing rater: added to the study" in html
    # Shown once: the page read again has the states, never the links.
    again = client.get(f"/studies/{study.slug}/raters/").content.decode()
    assert invite_links(again) == []
    assert not any(link.rsplit("/", 2)[-2] in again for link in links)
    assert again.count('class="invite-state">pending') == 2

    token = links[0].rstrip("/").rsplit("/", 1)[-1]
    Client().post(f"/invite/{token}/", {"password": GOOD_PASSWORD, "password_again": GOOD_PASSWORD})
    cleo_invite = StudyInvite.objects.get(username="cleo")
    client.post(f"/studies/{study.slug}/raters/invites/{cleo_invite.pk}/revoke/")
    page = client.get(f"/studies/{study.slug}/raters/").content.decode()
    assert re.search(r'class="invite-state">accepted by bob \d{4}-', page)
    assert re.search(r'class="invite-state">revoked \d{4}-.* by ' + owner.username, page)
    one = client.post(f"/studies/{study.slug}/raters/invites/", {"usernames": "", "days": "2"})
    assert len(invite_links(one.content.decode())) == 1
    bad = client.post(f"/studies/{study.slug}/raters/invites/", {"usernames": "a b", "days": "7"})
    assert bad.status_code == 400 and "line 1" in bad.content.decode()


def test_a_new_person_signs_up_through_an_invite_and_lands_on_the_rating_page(owner) -> None:
    study = make_study(items=2, overlap=1, owner=owner, rater_title="Helpful answers")
    new = services.invite_create(study=study, actor=owner)
    client = Client()
    page = client.get(f"/invite/{new.token}/")
    assert page.status_code == 200 and b"Helpful answers" in page.content
    assert study.name.encode() not in page.content and study.slug.encode() not in page.content
    weak = client.post(
        f"/invite/{new.token}/",
        {"username": "dana", "password": "12345678", "password_again": "12345678"},
    )
    assert weak.status_code == 400 and b"entirely numeric" in weak.content
    differ = client.post(
        f"/invite/{new.token}/",
        {"username": "dana", "password": GOOD_PASSWORD, "password_again": "other-pass-1"},
    )
    assert differ.status_code == 400 and b"the two passwords differ" in differ.content
    assert not User.objects.filter(username="dana").exists()
    done = client.post(
        f"/invite/{new.token}/",
        {"username": "dana", "password": GOOD_PASSWORD, "password_again": GOOD_PASSWORD},
    )
    assert done.status_code == 302 and done["Location"] == f"/rate/{study.public_id}/"
    assert client.get(done["Location"]).status_code == 200  # signed in, a rater of the study
    used = Client().get(f"/invite/{new.token}/")
    assert used.status_code == 410 and b"used already" in used.content
    assert Client().get("/invite/no-such-token/").status_code == 404


def test_a_signed_in_rater_joins_with_one_click(owner) -> None:
    study = make_study(items=2, overlap=1, owner=owner)
    rater = make_user("rater")
    new = services.invite_create(study=study, actor=owner)
    client = signed_in(rater)
    assert b"Join the study as" in client.get(f"/invite/{new.token}/").content
    joined = client.post(f"/invite/{new.token}/")
    assert joined.status_code == 302
    assert StudyRater.objects.filter(study=study, rater=rater).exists()


def test_removing_a_rater_from_the_page(owner) -> None:
    rater = make_user("rater")
    study = make_study(items=2, overlap=1, owner=owner, raters=[rater])
    services.assignment_next(study=study, rater=rater)
    response = signed_in(owner).post(f"/studies/{study.slug}/raters/{rater.username}/remove/")
    assert response.status_code == 302
    page = signed_in(owner).get(response["Location"]).content.decode()
    assert "their judgments stay" in page and re.search(r"removed \d{4}-", page)
    assert AuditEvent.objects.filter(entity="rater", action="removed", actor=owner).exists()
    removed_view = signed_in(rater).get(f"/rate/{study.public_id}/")
    assert removed_view.status_code == 410
    assert b"no longer in this study" in removed_view.content
    assert b"no longer in this study" not in signed_in(rater).get("/rate/").content


def crowd_link_from_page(researcher: Client, study, form: dict[str, str]) -> str:
    """Creates a crowd link with the raters page's form; its path as the page shows it."""
    created = researcher.post(f"/studies/{study.slug}/raters/crowd-links/", form)
    assert created.status_code == 302
    page = researcher.get(f"/studies/{study.slug}/raters/").content.decode()
    [url] = re.findall(r'class="crowd-link" value="([^"]+)"', page)
    return url.split("testserver", 1)[1]


def test_a_crowd_participant_starts_resumes_and_is_refused_a_bad_id(owner) -> None:
    study = make_study(items=3, overlap=1, owner=owner)
    researcher = signed_in(owner)
    path = crowd_link_from_page(
        researcher,
        study,
        {"param_name": "workerId", "items_per_participant": "2", "completion_code": "MTURK-9"},
    )
    assert path.endswith("?workerId=")

    participant = Client()
    assert participant.get(path).status_code == 400  # no id
    assert participant.get(path + "bad%20id").status_code == 400
    start = participant.get(path + "A1B2C3")
    assert start.status_code == 200 and b"up to <strong>2</strong> pairs" in start.content
    assert not StudyRater.objects.filter(participant_id="A1B2C3").exists()  # GET writes nothing
    joined = participant.post(path.split("?")[0], {"participant_id": "A1B2C3"})
    assert joined.status_code == 302 and joined["Location"] == f"/rate/{study.public_id}/"
    assert participant.get(joined["Location"]).status_code == 200
    # The same id on the same link resumes at once; another id in this browser is another
    # account.
    assert participant.get(path + "A1B2C3")["Location"] == f"/rate/{study.public_id}/"
    participant.post(path.split("?")[0], {"participant_id": "Z9"})
    assert StudyRater.objects.filter(study=study, crowd_link__isnull=False).count() == 2

    # Someone signed in with another account is told to sign out; nothing joins.
    other = signed_in(make_user("rater")).post(path.split("?")[0], {"participant_id": "Q1"})
    assert other.status_code == 409 and b"sign out first" in other.content
    link_id = StudyRater.objects.filter(participant_id="Z9").get().crowd_link_id
    researcher.post(f"/studies/{study.slug}/raters/crowd-links/{link_id}/deactivate/")
    assert Client().get(path + "NEW1").status_code == 410
    assert not StudyRater.objects.filter(participant_id__in=["Q1", "NEW1"]).exists()


def test_the_admin_reads_invites_crowd_links_and_memberships_without_tokens(owner) -> None:
    study = make_study(items=1, overlap=1, owner=owner)
    new = services.invite_create(study=study, actor=owner)
    link = services.crowd_link_create(study=study, actor=owner, items_per_participant=1)
    joined = services.crowd_participant_join(token=link.token, participant_id="ADM1")
    admin_client = signed_in(User.objects.create_superuser("root", password=GOOD_PASSWORD))
    pages = [
        "/admin/annotations/studyinvite/",
        f"/admin/annotations/studyinvite/{new.invite.pk}/change/",
        "/admin/annotations/crowdlink/",
        f"/admin/annotations/crowdlink/{link.pk}/change/",
        f"/admin/annotations/studyrater/{joined.membership.pk}/change/",
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert new.token not in body and link.token not in body
        assert new.invite.token_hash not in body
    assert b"ADM1" in admin_client.get(pages[-1]).content


def test_the_crowd_start_page_names_the_study_only_by_its_rater_title(owner) -> None:
    study = make_study(items=1, overlap=1, owner=owner)
    link = services.crowd_link_create(study=study, actor=owner, items_per_participant=1)
    body = Client().get(f"/crowd/{link.token}/?PROLIFIC_PID=abc").content.decode()
    assert "Comparison study" in body
    for secret in (study.name, study.slug, study.base_model, study.tuned_model):
        assert secret not in body


def test_a_full_crowd_link_says_so_to_a_new_participant(owner) -> None:
    study = make_study(items=3, overlap=1, owner=owner)
    researcher = signed_in(owner)
    path = crowd_link_from_page(
        researcher,
        study,
        {"param_name": "PROLIFIC_PID", "items_per_participant": "1", "max_participants": "1"},
    )
    start = path.split("?")[0]
    assert Client().post(start, {"participant_id": "first"}).status_code == 302
    refused = Client().post(start, {"participant_id": "second"})
    assert refused.status_code == 409 and b"takes no new ones" in refused.content
    page = researcher.get(f"/studies/{study.slug}/raters/").content.decode()
    assert "<td>1 of 1</td>" in page
    assert StudyRater.objects.filter(study=study).count() == 1
