"""Celery tasks of the annotations app (queue `cpu`, the default)."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="annotations.refresh_study_dashboard", soft_time_limit=10 * 60, time_limit=15 * 60
)
def refresh_study_dashboard(study_id: int) -> None:
    """Recomputes a large study's dashboard snapshot (`annotations.dashboard`)."""
    from annotations.dashboard import dashboard_snapshot_refresh
    from annotations.models import Study

    study = Study.objects.filter(pk=study_id).first()
    if study is not None:
        dashboard_snapshot_refresh(study=study)
