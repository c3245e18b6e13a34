from __future__ import annotations

from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Pre-scoring, agreement, reports and release"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from annotations.signals import evidence_changed

        evidence_changed.connect(on_evidence_changed, dispatch_uid="scoring-evidence-changed")


def on_evidence_changed(sender, study_id: int, **kwargs) -> None:
    from scoring.release import evidence_check_schedule

    evidence_check_schedule(study_id=study_id)
