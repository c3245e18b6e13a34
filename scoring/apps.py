from __future__ import annotations

from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Pre-scoring, agreement, reports and release"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from annotations.signals import evidence_changed, study_created, study_opened

        evidence_changed.connect(on_evidence_changed, dispatch_uid="scoring-evidence-changed")
        study_opened.connect(on_study_opened, dispatch_uid="scoring-study-opened")
        study_created.connect(on_study_created, dispatch_uid="scoring-study-created")


def on_evidence_changed(sender, study_id: int, kind: str = "votes", **kwargs) -> None:
    from scoring.release import evidence_check_schedule

    if kind == "items":  # new items change what the study can show: plan it again
        on_study_created(sender, study_id)
    evidence_check_schedule(study_id=study_id)


def on_study_opened(sender, study_id: int, **kwargs) -> None:
    from annotations.models import Study
    from scoring.release.sequential import sequential_plan_ensure

    study = Study.objects.filter(pk=study_id).first()
    if study is not None:
        sequential_plan_ensure(study=study)  # plans the study's size again first


def on_study_created(sender, study_id: int, **kwargs) -> None:
    from annotations.models import Study
    from scoring.release.planning import planning_update

    study = Study.objects.filter(pk=study_id).first()
    if study is not None:
        planning_update(study=study)
