"""The sequential design is fixed when a study opens; looks are recorded once on the
evidence-change path; building or reading the report never spends alpha."""

from __future__ import annotations

import pytest

from annotations import services
from annotations.models import AuditEvent, StudyStatus
from scoring.models import SequentialLook, SequentialPlan
from scoring.release import evidence_check, study_report
from scoring.release.sequential import sequential_looks_record
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


def judge(study, raters, choice: str) -> None:
    for rater in raters:
        while (a := services.assignment_next(study=study, rater=rater)) is not None:
            services.judgment_submit(assignment_id=a.pk, rater=rater, choice=choice)


def test_opening_fixes_the_design_and_each_look_is_recorded_once(researcher, eager_celery) -> None:
    raters = [make_user() for _ in range(2)]
    study = make_study(items=25, overlap=2, raters=raters, status=StudyStatus.DRAFT)
    with eager_celery(execute=True):
        # The factory's texts start with "Base answer" / "Tuned answer": acknowledged here.
        services.study_transition(
            study=study,
            target=StudyStatus.OPEN,
            actor=researcher,
            reason="synthetic test texts",
            acknowledge_blinding_risk=True,
        )
    plan = SequentialPlan.objects.get(study=study)
    assert plan.design["max_items"] == 25 and plan.design["look_every_items"] == 10
    assert AuditEvent.objects.filter(entity="sequential_plan", study=study).count() == 1
    # The tuned side wins everywhere ("1" picks the left slot; the test reads it back below).
    with eager_celery(execute=True):
        for rater in raters:
            while (a := services.assignment_next(study=study, rater=rater)) is not None:
                services.judgment_submit(
                    assignment_id=a.pk,
                    rater=rater,
                    choice="1" if a.left_system == "tuned" else "2",
                )
    looks = list(SequentialLook.objects.filter(study=study).order_by("number"))
    assert looks, "the evidence checks after the judgments recorded the due look(s)"
    assert looks[-1].record["decision"] == "tuned"
    count = len(looks)
    # Reading and rebuilding the report, and checking again without new evidence: no new look.
    first = study_report(study=study)
    study_report(study=study)
    evidence_check(study_id=study.pk)
    assert sequential_looks_record(study=study) is None
    assert SequentialLook.objects.filter(study=study).count() == count
    decision = first["decision"]
    assert decision["planned"] and decision["decided"] and decision["direction"] == "tuned"
    assert decision["looks"] == count
    assert first["decision"] == study_report(study=study)["decision"]


def test_a_draft_study_has_no_plan_and_no_looks(researcher) -> None:
    rater = make_user()
    study = make_study(items=12, overlap=1, raters=[rater], status=StudyStatus.DRAFT)
    assert sequential_looks_record(study=study) is None
    assert not SequentialPlan.objects.filter(study=study).exists()
    assert study_report(study=study)["decision"]["planned"] is False


def test_a_look_is_immutable() -> None:
    raters = [make_user()]
    study = make_study(items=10, overlap=1, raters=raters)
    judge(study, raters, "1")
    look = sequential_looks_record(study=study)
    assert look is not None and look.n_items == 10
    look.n_items = 3
    with pytest.raises(PermissionError):
        look.save()
    with pytest.raises(PermissionError):
        SequentialLook.objects.filter(pk=look.pk).update(n_items=3)


def test_evidence_checks_are_batched_off_the_request(settings, monkeypatch, eager_celery) -> None:
    # In-process mode with a debounce window: a judgment schedules one check per window on a
    # timer thread, never runs the check (a study-wide aggregate) in the rater's request.
    from scoring.release import signoff

    settings.EVIDENCE_CHECK_DEBOUNCE_SECONDS = 30
    started = []

    class FakeTimer:
        def __init__(self, interval, function, args):
            started.append((interval, function, args))
            self.daemon = False

        def start(self):
            pass

    monkeypatch.setattr(signoff.threading, "Timer", FakeTimer)
    # In-process mode even when CI points REDIS_URL at a broker (eager_celery sets it).
    ran = []
    monkeypatch.setattr(signoff, "evidence_check", lambda **kwargs: ran.append(kwargs))
    raters = [make_user()]
    study = make_study(items=3, overlap=1, raters=raters)
    for _ in range(3):
        signoff.evidence_check_schedule(study_id=study.pk)
    assert len(started) == 1 and started[0][0] == 30 and started[0][2] == [study.pk]
    assert ran == []  # nothing ran in the caller
