"""Secrets stay home: the judge key goes only to configured endpoints, typed addresses are
refused unless allow-listed, webhooks reach public addresses only, and no remote body is ever
stored or shown."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from annotations.models import Study
from scoring.models import ScoringJob, TrainingRun, WebhookDelivery
from scoring.release import webhook_deliver
from tests.conftest import api_client_for
from tests.factories import make_study, make_user
from tests.scoring.release_helpers import submission
from tests.scoring.test_scoring_jobs import FakeJudgeHandler, start_job

pytestmark = pytest.mark.django_db

SERVER_KEY = "sk-server-secret-0123"
SECRET_BODY = "INTERNAL-ONLY-BODY-7f3a"


class RecordingJudge(FakeJudgeHandler):
    """The fake judge, recording each request's Authorization header; answers `status` with
    a body that must never be echoed when `status` is an error."""

    authorizations: list[str | None] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).authorizations.append(self.headers.get("Authorization"))
        if type(self).status == 200:
            super().do_POST()
            return
        length = int(self.headers["Content-Length"])
        self.rfile.read(length)
        payload = SECRET_BODY.encode()
        self.send_response(type(self).status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def recording_judge():
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    RecordingJudge.authorizations = []
    RecordingJudge.status = 200
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def openai_judge(**extra):
    return {"backend": "openai", "model": "fake-judge", "max_retries": 0, **extra}


@override_settings(JUDGE_API_KEY=SERVER_KEY, JUDGE_ALLOWED_BASE_URLS=[])
def test_a_typed_judge_address_is_refused_wherever_settings_are_accepted(
    researcher, recording_judge, researcher_api
) -> None:
    judge = openai_judge(base_url=recording_judge)
    study = make_study(items=2, overlap=1, owner=researcher)
    patch = researcher_api.patch(
        f"/api/v1/studies/{study.slug}/", {"settings": {"judge": judge}}, format="json"
    )
    assert patch.status_code == 400, patch.content
    assert "settings.judge" in patch.json()["errors"]
    create = researcher_api.post(
        "/api/v1/studies/",
        {"slug": "typed", "name": "T", "task_type": "chat", "settings": {"judge": judge}},
        format="json",
    )
    assert create.status_code == 400 and not Study.objects.filter(slug="typed").exists()
    run = researcher_api.post(
        "/api/v1/runs/", submission(study_settings={"judge": judge}), format="json"
    )
    assert run.status_code == 400, run.content
    assert "study_settings.judge" in run.json()["errors"]
    assert not TrainingRun.objects.exists()
    job = researcher_api.post(
        f"/api/v1/studies/{study.slug}/prescore/", {"judge": judge}, format="json"
    )
    assert job.status_code == 400 and "judge" in job.json()["errors"]
    assert not ScoringJob.objects.filter(study=study).exists()
    with_key = researcher_api.patch(
        f"/api/v1/studies/{study.slug}/",
        {"settings": {"judge": openai_judge(endpoint="default", api_key="sk-mine")}},
        format="json",
    )
    assert with_key.status_code == 400
    assert RecordingJudge.authorizations == []


@override_settings(JUDGE_API_KEY=SERVER_KEY, JUDGE_ALLOWED_BASE_URLS=[])
def test_the_worker_refuses_a_stored_address_that_is_not_allowed(
    recording_judge, eager_celery
) -> None:
    study = make_study(items=2, overlap=1)
    # Settings written before the allow-list existed (or straight into the database).
    Study.objects.filter(pk=study.pk).update(
        settings={"judge": openai_judge(base_url=recording_judge)}
    )
    study.refresh_from_db()
    job = start_job(eager_celery, study, metrics=["judge"])
    assert RecordingJudge.authorizations == []
    assert any(s["scorer"] == "judge" and "refused" in s["reason"] for s in job.skipped), (
        job.skipped
    )


def test_the_key_goes_only_to_the_endpoint_it_was_configured_for(
    recording_judge, eager_celery
) -> None:
    endpoints = {
        "lab": {"base_url": recording_judge, "api_key": "sk-lab-key"},
        "default": {"base_url": "http://judge.internal/v1", "api_key": SERVER_KEY},
    }
    with override_settings(JUDGE_ENDPOINTS=endpoints, JUDGE_API_KEY=SERVER_KEY):
        start_job(eager_celery, make_study(items=1, overlap=1), judge=openai_judge(endpoint="lab"))
        assert set(RecordingJudge.authorizations) == {"Bearer sk-lab-key"}
        RecordingJudge.authorizations = []
        with override_settings(JUDGE_ALLOWED_BASE_URLS=[recording_judge]):
            job = start_job(
                eager_celery,
                make_study(items=1, overlap=1),
                # Another model name: cached answers are keyed by model, not address.
                judge=openai_judge(base_url=recording_judge, model="other-judge"),
            )
    # An allow-listed typed address is called, but without any server key.
    assert RecordingJudge.authorizations and set(RecordingJudge.authorizations) == {None}
    assert "api_key" not in json.dumps(job.judge)


def test_a_failed_judge_call_shows_a_status_never_the_remote_body(
    recording_judge, eager_celery
) -> None:
    RecordingJudge.status = 403
    endpoints = {"lab": {"base_url": recording_judge, "api_key": "sk-lab-key"}}
    researcher = make_user("researcher")
    with override_settings(JUDGE_ENDPOINTS=endpoints):
        job = start_job(
            eager_celery, make_study(items=1, overlap=1), judge=openai_judge(endpoint="lab")
        )
    shown = api_client_for(researcher).get(f"/api/v1/scoring-jobs/{job.pk}/").content.decode()
    assert RecordingJudge.authorizations
    assert "403" in shown
    assert SECRET_BODY not in shown and "sk-lab-key" not in shown


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://user:pw@hooks.example.org/",
        "ftp://hooks.example.org/",
    ],
)
def test_webhooks_to_internal_addresses_are_refused_at_submission(researcher_api, url) -> None:
    response = researcher_api.post("/api/v1/runs/", submission(webhook_url=url), format="json")
    assert response.status_code == 400, response.content
    assert "webhook_url" in response.json()["errors"]
    assert not TrainingRun.objects.exists()


def stored_run_with_webhook(url: str) -> WebhookDelivery:
    """A run whose webhook URL was stored before these checks existed, with one delivery."""
    researcher = make_user("researcher")
    with override_settings(WEBHOOK_ALLOWED_HOSTS=["hooks.example.org"]):
        response = api_client_for(researcher).post(
            "/api/v1/runs/", submission(webhook_url="http://hooks.example.org/x"), format="json"
        )
    assert response.status_code == 201, response.content
    run = TrainingRun.objects.get()
    TrainingRun.objects.filter(pk=run.pk).update(webhook_url=url)
    return WebhookDelivery.objects.create(run=run, payload={"event": "test"})


def test_webhook_delivery_checks_the_resolved_address(monkeypatch) -> None:
    delivery = stored_run_with_webhook("http://rebind.example.org/hook")
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 80))],
    )

    def no_request(*args, **kwargs):
        raise AssertionError("a refused webhook must not be sent")

    monkeypatch.setattr("httpx.Client.send", no_request)
    webhook_deliver(delivery_id=delivery.pk, final_attempt=False)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "private" in delivery.last_error


class BodyReceiver(BaseHTTPRequestHandler):
    status = 500
    location = ""
    hits = 0
    hosts: list[str | None] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits += 1
        type(self).hosts.append(self.headers.get("Host"))
        self.rfile.read(int(self.headers["Content-Length"]))
        body = SECRET_BODY.encode()
        self.send_response(type(self).status)
        if type(self).location:
            self.send_header("Location", type(self).location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def body_receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), BodyReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    BodyReceiver.hits = 0
    BodyReceiver.location = ""
    with override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.mark.parametrize("status", [500, 404])
def test_webhook_failures_store_a_status_never_the_body(body_receiver, status) -> None:
    BodyReceiver.status = status
    delivery = stored_run_with_webhook(body_receiver)
    try:
        webhook_deliver(delivery_id=delivery.pk, final_attempt=True)
    except Exception as exc:  # noqa: BLE001 - a 5xx asks the task to retry
        assert "HTTP 500" in str(exc)
    delivery.refresh_from_db()
    assert delivery.last_status_code == status and delivery.status == "failed"
    assert SECRET_BODY not in delivery.last_error and str(status) in delivery.last_error


def test_webhook_delivery_connects_to_the_address_it_checked(body_receiver, monkeypatch) -> None:
    """No second DNS lookup: the request goes to the checked address, named in Host."""
    BodyReceiver.status = 200
    port = body_receiver.rsplit(":", 1)[1].split("/")[0]
    delivery = stored_run_with_webhook(f"http://hooks.test:{port}/hook")
    lookups = []

    def resolve(host, *args, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with override_settings(WEBHOOK_ALLOWED_HOSTS=["hooks.test"]):
        webhook_deliver(delivery_id=delivery.pk, final_attempt=False)
    delivery.refresh_from_db()
    assert delivery.status == "delivered", delivery.last_error
    assert "hooks.test" in lookups and BodyReceiver.hosts[-1] == f"hooks.test:{port}"
    assert set(lookups) <= {"hooks.test", "127.0.0.1"}


def test_webhook_redirects_are_not_followed(body_receiver) -> None:
    BodyReceiver.status = 302
    BodyReceiver.location = "http://169.254.169.254/latest/meta-data/"
    delivery = stored_run_with_webhook(body_receiver)
    webhook_deliver(delivery_id=delivery.pk, final_attempt=False)
    delivery.refresh_from_db()
    assert BodyReceiver.hits == 1
    assert delivery.status == "failed" and delivery.last_status_code == 302
    assert "redirect" in delivery.last_error
