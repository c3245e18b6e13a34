"""The authorization table: every endpoint of the URL configuration (API and pages) x every kind
of user, with the status code each gets.

The endpoints come from `get_resolver()`, so a new URL without a row here fails
`test_every_endpoint_has_a_row`; a new method on an API view fails it too. Rows are requests
against one shared world (a study with an owner and a collaborator, a rater holding a pair, a
run, a sign-off, a scoring job, an export, an identity flag); each request runs in a savepoint
that is rolled back, so no row sees another's writes.

Codes: 200/201/202/204 allowed and done; 302 pages (anonymous: to the login page; a page's
form: back to the page with the outcome as a message); 400 allowed, bad input (the rows send
none where only authorization matters); 403 role or study rule; 404 not visible to this user;
409 allowed, but the state refuses (e.g. deleting a study that has a run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.factories import jsonl_bytes, make_study, make_user, pair_records

ROLES = (
    "anonymous",
    "rater",  # assigned to the study, holds a pair
    "other_rater",  # a rater not assigned to it
    "owner",  # the researcher who created the study
    "collaborator",  # a researcher added to it
    "other_researcher",  # a researcher not on it (may read: STUDIES_READABLE_BY_ALL_RESEARCHERS)
    "release_owner",
    "admin",
)

# URLs outside the table, each with its reason.
EXCLUDED_NAMESPACES = {
    "admin": "the Django admin: its own permission system; tests/annotations/test_governance.py "
    "checks what the admin role and a superuser can and cannot do there",
}
EXCLUDED_NAMES = {
    "api-schema": "the OpenAPI schema: public description of the API, no data",
    "api-docs": "Swagger UI for the schema: static page, no data",
}


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    codes: str  # one code per role, in ROLES order
    kwargs: dict[str, str] = field(default_factory=dict)  # placeholders filled from the world
    query: str = ""
    data: Any = None
    fmt: str = "json"  # json | form | multipart

    @property
    def expected(self) -> dict[str, int]:
        codes = [int(code) for code in self.codes.split()]
        assert len(codes) == len(ROLES), self
        return dict(zip(ROLES, codes, strict=True))


S = {"slug": "{slug}"}
RUN = {"run_id": "{run_id}"}
A = {"assignment_id": "{assignment_id}"}
# anonymous rater other_rater owner collaborator other_researcher release_owner admin
TABLE: tuple[Row, ...] = (
    # --- authentication
    Row("login", "GET", "200 200 200 200 200 200 200 200", fmt="form"),
    Row("logout", "POST", "302 302 302 302 302 302 302 302", fmt="form"),
    Row("api-token", "POST", "400 400 400 400 400 400 400 400", data={}),
    # Revoke ends the caller's own token: any signed-in user (none held here: 204 all the same).
    Row("api-token-revoke", "POST", "403 204 204 204 204 204 204 204", data={}),
    # --- studies API
    Row("api-studies", "GET", "403 403 403 200 200 200 403 200"),
    Row("api-studies", "POST", "403 403 403 400 400 400 403 400", data={}),
    Row("api-study", "GET", "403 403 403 200 200 200 200 200", S),
    Row("api-study", "PATCH", "403 403 403 200 200 403 403 200", S, data={"name": "Renamed"}),
    # The study has a run: nobody deletes it (409 for who may ask), it is archived instead.
    Row("api-study", "DELETE", "403 403 403 409 403 403 403 409", S),
    Row("api-study-archive", "POST", "403 403 403 200 403 403 403 200", S, data={}),
    # Reopen is the release owner's; the study is open, so the state refuses (409).
    Row("api-study-reopen", "POST", "403 403 403 403 403 403 409 409", S, data={"reason": "r"}),
    Row("api-study-collaborators", "GET", "403 403 403 200 200 200 403 200", S),
    Row(
        "api-study-collaborators",
        "POST",
        "403 403 403 200 403 403 403 200",
        S,
        data={"username": "{other_researcher}"},
    ),
    Row(
        "api-study-collaborator",
        "DELETE",
        "403 403 403 204 403 403 403 204",
        {"slug": "{slug}", "username": "{collaborator}"},
    ),
    Row("api-study-import", "POST", "403 403 403 201 201 403 403 201", S, fmt="multipart"),
    Row("api-study-raters", "GET", "403 403 403 200 200 200 403 200", S),
    Row(
        "api-study-raters",
        "POST",
        "403 403 403 200 200 403 403 200",
        S,
        data={"usernames": ["{other_rater}"]},
    ),
    Row("api-study-progress", "GET", "403 403 403 200 200 200 403 200", S),
    Row("api-study-dashboard", "GET", "403 403 403 200 200 200 403 200", S),
    # The factory imports the study's items, which runs the audit: whoever may read it reads it.
    Row("api-study-blinding-audit", "GET", "403 403 403 200 200 200 403 200", S),
    Row("api-study-blinding-audit", "POST", "403 403 403 200 200 403 403 200", S, data={}),
    Row("api-study-disagreements", "GET", "403 403 403 200 200 200 403 200", S),
    Row("api-study-judgments", "GET", "403 403 403 200 200 200 403 200", S),
    Row(
        "api-adjudication",
        "POST",
        "403 403 403 200 200 403 403 200",
        {"slug": "{slug}", "external_id": "{external_id}"},
        data={"preference": "base", "rationale": "checked"},
    ),
    # --- any signed-in user, raters
    Row("api-me", "GET", "403 200 200 200 200 200 200 200"),
    Row("api-my-studies", "GET", "403 200 200 403 403 403 403 403"),
    Row("api-queue-next", "GET", "403 200 404 403 403 403 403 403", query="study={slug}"),
    Row("api-judgment", "POST", "403 201 404 403 403 403 403 403", A, data={"choice": "1"}),
    # Undo: the rater's pair is not judged yet, so there is nothing to withdraw (409).
    Row("api-judgment", "DELETE", "403 409 404 403 403 403 403 403", A),
    Row(
        "api-my-study-progress", "GET", "403 200 404 403 403 403 403 403", {"study": "{public_id}"}
    ),
    Row("api-skip", "POST", "403 200 404 403 403 403 403 403", A, data={}),
    Row("api-renew", "POST", "403 200 404 403 403 403 403 403", A, data={}),
    # --- scoring API
    Row("api-prescore", "POST", "403 403 403 202 202 403 403 202", S, data={}),
    Row("api-study-scores", "GET", "403 403 403 200 200 200 403 200", S),
    Row("api-study-scores-export", "GET", "403 403 403 200 200 200 403 200", S),
    Row("api-identity-flags", "GET", "403 403 403 200 200 200 403 200", S),
    Row(
        "api-identity-decide",
        "POST",
        "403 403 403 200 200 403 403 200",
        {"flag_id": "{flag_id}"},
        data={"decision": "keep"},
    ),
    Row("api-scoring-job", "GET", "403 403 403 200 200 200 403 200", {"job_id": "{job_id}"}),
    Row("api-study-report", "GET", "403 403 403 200 200 200 200 200", S),
    # Exports only read the study: whoever may read it may build one.
    Row(
        "api-export-start",
        "POST",
        "403 403 403 202 202 202 403 202",
        S,
        data={"kind": "report_json"},
    ),
    Row("api-export", "GET", "403 403 403 200 200 200 403 200", {"export_id": "{export_id}"}),
    # The export is still pending: allowed, but nothing to download yet.
    Row(
        "api-export-download",
        "GET",
        "403 403 403 409 409 409 403 409",
        {"export_id": "{export_id}"},
    ),
    Row("api-runs", "POST", "403 403 403 400 400 400 403 400", data={}),
    Row("api-run", "GET", "403 403 403 200 200 200 200 200", RUN),
    Row("api-run-decision", "GET", "403 403 403 200 200 200 200 200", RUN),
    # Only release owners sign; the study is not ready, so the state refuses them (409).
    Row(
        "api-run-signoff",
        "POST",
        "403 403 403 403 403 403 409 409",
        RUN,
        data={"decision": "reject", "comment": "no"},
    ),
    Row(
        "api-signoff-record",
        "GET",
        "403 403 403 200 200 200 200 200",
        {"signoff_id": "{signoff_id}"},
    ),
    Row("api-study-policy", "GET", "403 403 403 200 200 200 200 200", S),
    Row(
        "api-study-policy",
        "PATCH",
        "403 403 403 403 403 403 403 200",
        S,
        data={"min_human_votes": 5},
    ),
    Row(
        "api-study-transition",
        "POST",
        "403 403 403 200 200 403 403 200",
        S,
        data={"to": "closed"},
    ),
    Row("api-audit", "GET", "403 403 403 200 200 200 200 200", query="study={slug}"),
    # --- pages (anonymous: 302 to the login page)
    Row("home", "GET", "302 302 302 302 302 302 302 302", fmt="form"),
    Row("rater-home", "GET", "302 200 200 403 403 403 403 403", fmt="form"),
    Row("rate", "GET", "302 200 403 403 403 403 403 403", {"study": "{public_id}"}, fmt="form"),
    # The old slug URL only redirects to the opaque one (for its raters).
    Row("rate-by-slug", "GET", "302 302 403 403 403 403 403 403", S, fmt="form"),
    Row("study-list", "GET", "302 403 403 200 200 200 403 200", fmt="form"),
    Row("study-create", "GET", "302 403 403 200 200 200 403 200", fmt="form"),
    Row("study-create", "POST", "302 403 403 200 200 200 403 200", data={}, fmt="form"),
    Row("study-detail", "GET", "302 403 403 200 200 200 403 200", S, fmt="form"),
    # The import page previews an upload (200, nothing written); the confirmation imports it.
    Row("study-import", "GET", "302 403 403 200 200 403 403 200", S, fmt="form"),
    Row("study-import", "POST", "302 403 403 200 200 403 403 200", S, fmt="multipart"),
    Row("study-import-confirm", "POST", "302 403 403 302 302 403 403 302", S, data={}, fmt="form"),
    Row("study-settings", "GET", "302 403 403 200 200 403 403 200", S, fmt="form"),
    Row("study-settings", "POST", "302 403 403 200 200 403 403 200", S, data={}, fmt="form"),
    Row("study-raters", "GET", "302 403 403 200 200 200 403 200", S, fmt="form"),
    Row("study-dashboard", "GET", "302 403 403 200 200 200 403 200", S, fmt="form"),
    Row("study-dashboard-fragment", "GET", "302 403 403 200 200 200 403 200", S, fmt="form"),
    Row("study-raters", "POST", "302 403 403 302 302 403 403 302", S, data={}, fmt="form"),
    # A new invite link is shown once, on the page the POST answers.
    Row(
        "study-invites",
        "POST",
        "302 403 403 200 200 403 403 200",
        S,
        data={"days": "7"},
        fmt="form",
    ),
    Row(
        "study-invite-revoke",
        "POST",
        "302 403 403 302 302 403 403 302",
        {"slug": "{slug}", "invite_id": "{invite_id}"},
        data={},
        fmt="form",
    ),
    Row(
        "study-rater-remove",
        "POST",
        "302 403 403 302 302 403 403 302",
        {"slug": "{slug}", "username": "{rater}"},
        data={},
        fmt="form",
    ),
    Row(
        "study-crowd-links",
        "POST",
        "302 403 403 302 302 403 403 302",
        S,
        data={"param_name": "PROLIFIC_PID", "items_per_participant": "3"},
        fmt="form",
    ),
    Row(
        "study-crowd-link-deactivate",
        "POST",
        "302 403 403 302 302 403 403 302",
        {"slug": "{slug}", "link_id": "{crowd_link_id}"},
        data={},
        fmt="form",
    ),
    # Links that let raters in: the token is the credential, so anonymous visitors may open
    # them. An invite adds a signed-in rater (302 to the rating page) and refuses any other
    # account (403); an empty sign-up form is bad input (400).
    Row(
        "invite-accept",
        "GET",
        "200 200 200 200 200 200 200 200",
        {"token": "{invite_token}"},
        fmt="form",
    ),
    Row(
        "invite-accept",
        "POST",
        "400 302 302 403 403 403 403 403",
        {"token": "{invite_token}"},
        data={},
        fmt="form",
    ),
    # A crowd link is for crowd participants: anyone signed in with another account is told
    # to sign out first (409); a participant starts (302 to the rating page).
    Row(
        "crowd-join",
        "GET",
        "200 409 409 409 409 409 409 409",
        {"token": "{crowd_token}"},
        query="PROLIFIC_PID=P1",
        fmt="form",
    ),
    Row(
        "crowd-join",
        "POST",
        "302 409 409 409 409 409 409 409",
        {"token": "{crowd_token}"},
        data={"participant_id": "P1"},
        fmt="form",
    ),
    Row(
        "study-status",
        "POST",
        "302 403 403 302 302 403 403 302",
        S,
        data={"status": "closed"},
        fmt="form",
    ),
    Row(
        "study-display-prefixes",
        "POST",
        "302 403 403 302 302 403 403 302",
        S,
        data={"display_strip_prefixes": "Sure!"},
        fmt="form",
    ),
    Row("study-blinding-audit", "POST", "302 403 403 302 302 403 403 302", S, data={}, fmt="form"),
    Row("study-scores", "GET", "302 403 403 200 200 200 403 200", S, fmt="form"),
    Row("study-prescore", "POST", "302 403 403 302 302 403 403 302", S, data={}, fmt="form"),
    Row(
        "study-identity-decide",
        "POST",
        "302 403 403 302 302 403 403 302",
        {"slug": "{slug}", "flag_id": "{flag_id}"},
        data={"decision": "keep"},
        fmt="form",
    ),
    Row("study-report", "GET", "302 403 403 200 200 200 200 200", S, fmt="form"),
    Row("study-disagreements", "GET", "302 403 403 200 200 200 403 200", S, fmt="form"),
    Row(
        "study-disagreements",
        "POST",
        "302 403 403 302 302 403 403 302",
        S,
        data={"item_id": "{external_id}", "preference": "base", "rationale": "checked"},
        fmt="form",
    ),
    Row("run-list", "GET", "302 403 403 200 200 200 200 200", fmt="form"),
    Row("run-signoff", "GET", "302 403 403 200 200 200 200 200", RUN, fmt="form"),
    Row(
        "run-signoff",
        "POST",
        "302 403 403 302 302 302 302 302",
        RUN,
        data={"decision": "reject", "comment": "no"},
        fmt="form",
    ),
    Row("run-reopen", "POST", "302 403 403 302 302 302 302 302", RUN, data={}, fmt="form"),
)

API_METHODS = ("get", "post", "put", "patch", "delete")


def url_patterns(resolver=None, prefix: str = "", namespace: str = ""):
    """(route, name, namespace, callback) for every URL of the project."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from url_patterns(
                entry, prefix + str(entry.pattern), entry.namespace or namespace
            )
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.name, namespace, entry.callback


def table_endpoints() -> list[tuple[str, str, Any]]:
    endpoints = []
    for route, name, namespace, callback in url_patterns():
        if namespace in EXCLUDED_NAMESPACES or name in EXCLUDED_NAMES:
            continue
        assert name, f"URL {route!r} has no name; name it and give it a row"
        endpoints.append((route, name, callback))
    return endpoints


def test_every_endpoint_has_a_row() -> None:
    rows = {(row.name, row.method) for row in TABLE}
    assert len(rows) == len(TABLE), "a (name, method) row appears twice"
    names_in_conf = set()
    missing = []
    for route, name, callback in table_endpoints():
        names_in_conf.add(name)
        view_class = getattr(callback, "cls", None)
        if view_class is not None:  # DRF: the methods the view implements
            methods = {m.upper() for m in API_METHODS if hasattr(view_class, m)}
        else:  # a page: the rows say which methods it takes
            methods = {method for row_name, method in rows if row_name == name} or {"GET"}
        missing += [
            f"{method} {route} ({name})" for method in methods if (name, method) not in rows
        ]
    assert not missing, "endpoints without a row in the authorization table:\n" + "\n".join(missing)
    stale = sorted({name for name, _ in rows} - names_in_conf)
    assert not stale, f"rows for URLs that no longer exist: {stale}"


@pytest.fixture
def world(db) -> dict[str, Any]:
    from annotations import services
    from scoring.models import (
        IdentityFlag,
        ReportExport,
        ScoringJob,
        SignOff,
        TrainingRun,
    )

    role_of = {
        "rater": "rater",
        "other_rater": "rater",
        "owner": "researcher",
        "collaborator": "researcher",
        "other_researcher": "researcher",
        "release_owner": "release_owner",
        "admin": "admin",
    }
    users = {who: make_user(role) for who, role in role_of.items()}
    study = make_study(items=3, overlap=1, raters=[users["rater"]], owner=users["owner"])
    services.collaborator_add(
        study=study, username=users["collaborator"].username, actor=users["owner"]
    )
    assignment = services.assignment_next(study=study, rater=users["rater"])
    run = TrainingRun.objects.create(
        run_id="run-authz", payload_sha256="0" * 64, study=study, base_model="b", tuned_model="t"
    )
    signoff = SignOff.objects.create(
        study=study,
        run=run,
        decision="reject",
        comment="an earlier rejection",
        signed_by=users["release_owner"],
        report_sha256="f" * 64,
        report_json="{}",
        policy={},
        criteria=[],
    )
    item = study.items.order_by("id").first()
    flag = IdentityFlag.objects.create(
        output=item.outputs.get(system="tuned"), item=item, matches=["acme"]
    )
    job = ScoringJob.objects.create(study=study)
    invite = services.invite_create(study=study, actor=users["owner"])
    crowd = services.crowd_link_create(study=study, actor=users["owner"], items_per_participant=2)
    export = ReportExport.objects.create(study=study, kind="report_json")
    return {
        "users": users,
        "values": {
            "slug": study.slug,
            "public_id": str(study.public_id),
            "run_id": run.run_id,
            "assignment_id": str(assignment.pk),
            "external_id": item.external_id,
            "flag_id": str(flag.pk),
            "job_id": str(job.pk),
            "export_id": str(export.pk),
            "signoff_id": str(signoff.pk),
            "invite_token": invite.token,
            "invite_id": str(invite.invite.pk),
            "crowd_token": crowd.token,
            "crowd_link_id": str(crowd.pk),
            **{role: user.username for role, user in users.items()},
        },
    }


def filled(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, list):
        return [filled(v, values) for v in value]
    if isinstance(value, dict):
        return {k: filled(v, values) for k, v in value.items()}
    return value


def send(client: Client, row: Row, values: dict[str, str]) -> int:
    url = reverse(row.name, kwargs=filled(row.kwargs, values))
    if row.query:
        url += "?" + filled(row.query, values)
    method = row.method.lower()
    data = filled(row.data, values)
    if row.fmt == "multipart":
        upload = SimpleUploadedFile(
            "extra.jsonl", jsonl_bytes(pair_records(1, prefix="authz-extra"))
        )
        return client.post(url, {"file": upload}).status_code
    if row.fmt == "json" and method != "get":
        return client.generic(
            row.method,
            url,
            data="" if data is None else json.dumps(data),
            content_type="application/json",
        ).status_code
    if method == "get":
        return client.get(url).status_code
    return client.generic(
        row.method,
        url,
        data=urlencode(data or {}, doseq=True),
        content_type="application/x-www-form-urlencoded",
    ).status_code


def test_authorization_table(world) -> None:
    wrong = []
    for row in TABLE:
        for role, expected in row.expected.items():
            with transaction.atomic():
                # A fresh session per cell: a row (logout) may end the one before.
                client = Client()
                if role != "anonymous":
                    client.force_login(world["users"][role])
                got = send(client, row, world["values"])
                transaction.set_rollback(True)
            if got != expected:
                wrong.append(f"{row.method} {row.name} as {role}: expected {expected}, got {got}")
    assert not wrong, f"{len(wrong)} cells differ from the table:\n" + "\n".join(wrong)
