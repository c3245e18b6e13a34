"""Pipeline webhooks: a delivery is queued when a run's decision changes and POSTed by a task."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from evalplatform.outbound import OutboundRefused, pinned_request_parts, webhook_target_address
from scoring.models import (
    TrainingRun,
    WebhookDelivery,
)

__all__ = [
    "WebhookTransientError",
    "decision_notify_if_changed",
    "enqueue_webhook",
    "record_webhook_failure",
    "webhook_deliver",
]


from scoring.release.evidence import decision_get


def decision_notify_if_changed(*, run_id: int) -> WebhookDelivery | None:
    """Queues a webhook call when the run's decision (state or verdict) changed since the last
    notification."""
    run = TrainingRun.objects.select_related("study").filter(pk=run_id).first()
    if run is None or not run.webhook_url:
        return None
    decision = decision_get(study=run.study)
    summary = {
        "state": decision["state"],
        "verdict": decision["verdict"],
        "report_sha256": decision["report_sha256"],
    }
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.last_notified_decision == summary:
            return None
        locked.last_notified_decision = summary
        locked.save(update_fields=["last_notified_decision"])
        delivery = WebhookDelivery.objects.create(
            run=locked,
            payload={
                "event": "decision_changed",
                "run_id": locked.run_id,
                "study": run.study.slug,
                **summary,
                "criteria": [
                    {k: c[k] for k in ("name", "passed", "required")} for c in decision["criteria"]
                ],
                "decision_url": f"/api/v1/runs/{locked.run_id}/decision/",
            },
        )
        delivery_id = delivery.pk
        transaction.on_commit(lambda: enqueue_webhook(delivery_id))
    return delivery


def enqueue_webhook(delivery_id: int) -> None:
    from scoring.tasks import deliver_webhook

    deliver_webhook.delay(delivery_id)


class WebhookTransientError(Exception):
    """The receiver answered 5xx/429 or could not be reached: retry with backoff."""


def webhook_deliver(*, delivery_id: int, final_attempt: bool) -> None:
    """POSTs a delivery's JSON to the run's webhook URL; records every attempt's outcome.

    The target is checked just before sending (`evalplatform.outbound.webhook_target_address`:
    public addresses only, unless allow-listed), the request goes to the address that was
    checked (no second DNS lookup), and redirects are not followed, so a webhook cannot be
    aimed at the server's own network. Only the status code and a short generic
    error are stored, never the receiver's body."""
    import httpx

    delivery = WebhookDelivery.objects.select_related("run").filter(pk=delivery_id).first()
    if delivery is None or delivery.status == "delivered":
        return
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=delivery.attempts + 1)
    url = delivery.run.webhook_url
    try:
        address = webhook_target_address(url)
    except OutboundRefused as exc:
        record_webhook_failure(delivery, None, f"refused: {exc}", True)
        return
    pinned_url, host_header, extensions = pinned_request_parts(url, address)
    try:
        with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False) as http:
            request = http.build_request(
                "POST",
                pinned_url,
                json=delivery.payload,
                headers={
                    **host_header,
                    "User-Agent": f"evalplatform-webhook/{delivery.run.run_id}",
                },
                extensions=extensions,
            )
            response = http.send(request)
    except httpx.HTTPError as exc:
        reason = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection failed"
        record_webhook_failure(delivery, None, reason, final_attempt)
        raise WebhookTransientError(reason) from exc
    code = response.status_code
    if code >= 500 or code == 429:
        record_webhook_failure(delivery, code, f"receiver answered HTTP {code}", final_attempt)
        raise WebhookTransientError(f"HTTP {code}")
    if code >= 300:
        # A refusal, or a redirect we do not follow (it could point anywhere): retrying the
        # same request cannot help.
        reason = "redirect not followed" if code < 400 else f"receiver refused with HTTP {code}"
        record_webhook_failure(delivery, code, reason, True)
        return
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="delivered",
        last_status_code=code,
        last_error="",
        delivered_at=timezone.now(),
    )


def record_webhook_failure(
    delivery: WebhookDelivery, code: int | None, error: str, final: bool
) -> None:
    """Stores an attempt's outcome: the status code and a short generic reason (never the
    receiver's body)."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="failed" if final else "pending", last_status_code=code, last_error=error[:200]
    )
