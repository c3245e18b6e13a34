from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from annotations.models import Study
from scoring.models import TrainingRun, WebhookDelivery
from scoring.release import decision_notify_if_changed
from tests.scoring.release_helpers import submission

pytestmark = pytest.mark.django_db


class Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(body)
        code = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    # Webhooks to loopback addresses are refused unless the host is allow-listed.
    with override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_webhook_retries_then_delivers_once_per_decision_change(
    researcher_api, eager_celery, receiver_url
) -> None:
    Receiver.answers = [503, 200]
    with eager_celery(execute=True):
        response = researcher_api.post(
            "/api/v1/runs/", submission(webhook_url=receiver_url), format="json"
        )
    assert response.status_code == 201
    run = TrainingRun.objects.get()
    # Pre-scoring of the study and of its hold-out set finished during the submission (eager):
    # new scores are evidence, so the pipeline was told each time its decision changed.
    deliveries = list(WebhookDelivery.objects.filter(run=run).order_by("id"))
    assert deliveries and all(d.status == "delivered" for d in deliveries)
    assert deliveries[0].attempts == 2  # 503, then 200
    summaries = [(d.payload["state"], d.payload["report_sha256"]) for d in deliveries]
    assert len(set(summaries)) == len(summaries)  # never the same decision twice
    assert Receiver.received[0]["run_id"] == "run-001" and "criteria" in Receiver.received[0]
    # Nothing changed: no further notification.
    with eager_celery(execute=True):
        assert decision_notify_if_changed(run_id=run.pk) is None
    Study.objects.filter(pk=run.study_id).update(status="closed")
    with eager_celery(execute=True):
        assert decision_notify_if_changed(run_id=run.pk) is not None
    assert Receiver.received[-1]["state"] == "closed"
    body = researcher_api.get("/api/v1/runs/run-001/").json()
    assert [d["status"] for d in body["webhook_deliveries"]] == ["delivered"] * (
        len(deliveries) + 1
    )


def test_refused_webhook_is_visible_as_failed(researcher_api, eager_celery, receiver_url) -> None:
    Receiver.answers = [410]
    with eager_celery(execute=True):
        researcher_api.post("/api/v1/runs/", submission(webhook_url=receiver_url), format="json")
    # The first notification (sent while pre-scoring finished) was refused for good.
    delivery = WebhookDelivery.objects.order_by("id").first()
    assert (
        delivery.status == "failed" and delivery.last_status_code == 410 and delivery.attempts == 1
    )
