from __future__ import annotations

from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Pre-scoring, agreement, reports and release"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from annotations.signals import evidence_changed, study_opened

        evidence_changed.connect(on_evidence_changed, dispatch_uid="scoring-evidence-changed")
        study_opened.connect(on_study_opened, dispatch_uid="scoring-study-opened")


def on_evidence_changed(sender, study_id: int, **kwargs) -> None:
    from scoring.release import evidence_check_schedule

    evidence_check_schedule(study_id=study_id)


def on_study_opened(sender, study_id: int, **kwargs) -> None:
    from annotations.models import Study
    from scoring.release.sequential import sequential_plan_ensure

    study = Study.objects.filter(pk=study_id).first()
    if study is not None:
        sequential_plan_ensure(study=study)
