"""The sequential decision of a study, on items (`scoring.stats.sequential`).

- The design (maximum items, a look every N items, the alpha-spending function) is fixed once,
  when the study opens (`sequential_plan_ensure`), and never changed after the first look.
- A look is recorded once, on the evidence-change path (`sequential_looks_record`, called by
  `scoring.release.signoff.evidence_check`): the alpha it spends is spent. Its statistic is the
  item-clustered score z over the *completed* items (all planned votes in).
- The report only reads the plan and the recorded looks (`sequential_section`): building,
  rebuilding or reading a report never spends alpha.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Count

from annotations import services as annotation_services
from annotations.models import Item, Judgment, Study, StudyStatus
from scoring.models import SequentialLook, SequentialPlan
from scoring.reports import CODES

__all__ = [
    "completed_item_counts",
    "sequential_looks_record",
    "sequential_plan_ensure",
    "sequential_section",
]

DEFAULT_LOOK_EVERY_ITEMS = 10


def rated_items(study: Study):
    return Item.objects.filter(study=study, is_gold=False, excluded=False)


def completed_item_counts(study: Study) -> np.ndarray:
    """``(n_items, 4)`` vote counts in code order of the study's completed items: non-gold,
    not excluded, with at least `overlap` votes."""
    complete = (
        rated_items(study)
        .annotate(n=Count("judgments"))
        .filter(n__gte=study.overlap)
        .values_list("pk", flat=True)
    )
    rows = (
        Judgment.objects.filter(item__in=complete)
        .values_list("item_id", "preferred")
        .order_by()
        .annotate(n=Count("pk"))
    )
    index: dict[int, int] = {}
    counts: list[list[int]] = []
    for item_id, preferred, n in rows:
        row = index.setdefault(item_id, len(counts))
        if row == len(counts):
            counts.append([0, 0, 0, 0])
        counts[row][CODES[preferred]] += n
    return np.asarray(counts, dtype=np.int64).reshape(-1, 4)


def design_for(study: Study) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The design a study gets when it opens, and the planning behind it; None while it has
    no rated items. The maximum is the items the power plan needs (`scoring.release.
    planning`), capped at the study's rated items; `settings["sequential"]` may set
    `look_every_items`, `alpha`, `spending` and `min_items`."""
    from scoring.release.planning import planning_update
    from scoring.stats.sequential import SequentialDesign

    available = rated_items(study).count()
    if not available:
        return None
    planning = planning_update(study=study).data
    needed = int(planning["needed"]["n_items"])
    config = (study.settings or {}).get("sequential", {}) or {}
    maximum = max(1, min(needed, available))
    design = SequentialDesign(
        max_items=maximum,
        look_every_items=int(config.get("look_every_items", DEFAULT_LOOK_EVERY_ITEMS)),
        alpha=float(config.get("alpha", 0.05)),
        spending=config.get("spending", "obrien_fleming"),
        min_items=min(maximum, int(config.get("min_items", DEFAULT_LOOK_EVERY_ITEMS))),
        created_from=(f"power plan: {needed} items needed, {available} rated items in the study"),
    )
    return design.as_dict(), {
        "rated_items": available,
        "items_needed": needed,
        "summary": planning["summary"],
    }


def sequential_plan_ensure(*, study: Study) -> SequentialPlan | None:
    """The study's plan, made now if it has none and has rated items (idempotent; audited
    when made)."""
    plan = SequentialPlan.objects.filter(study=study).first()
    if plan is not None:
        return plan
    made = design_for(study)
    if made is None:
        return None
    design, planning = made
    try:
        with transaction.atomic():
            plan = SequentialPlan.objects.create(study=study, design=design, planning=planning)
    except IntegrityError:  # planned concurrently: keep the first
        return SequentialPlan.objects.get(study=study)
    annotation_services.audit_record(
        entity="sequential_plan",
        entity_id=study.slug,
        action="planned",
        study=study,
        details={"design": design, "planning": planning},
    )
    return plan


def recorded_looks(study: Study) -> list:
    from scoring.stats.sequential import LookRecord

    return [
        LookRecord.from_dict(record)
        for record in SequentialLook.objects.filter(study=study)
        .order_by("number")
        .values_list("record", flat=True)
    ]


def sequential_looks_record(*, study: Study) -> SequentialLook | None:
    """Records the look that is due now, if any (the plan row is locked, so two checks never
    record the same look). A study still in draft has no plan and no looks."""
    from scoring.stats.sequential import SequentialDesign, sequential_look

    if study.status == StudyStatus.DRAFT:
        return None
    plan = sequential_plan_ensure(study=study)
    if plan is None:
        return None
    with transaction.atomic():
        SequentialPlan.objects.select_for_update().filter(pk=plan.pk).first()
        design = SequentialDesign.from_dict(plan.design)
        record = sequential_look(design, recorded_looks(study), counts=completed_item_counts(study))
        if record is None:
            return None
        look = SequentialLook.objects.create(
            study=study, number=record.look, n_items=record.n_items, record=record.as_dict()
        )
        annotation_services.audit_record(
            entity="sequential_look",
            entity_id=f"{study.slug}#{record.look}",
            action=record.decision,
            study=study,
            details=record.as_dict(),
        )
    # A recorded look changes the report's decision: cached builds are stale. (No signal: the
    # look itself was recorded by the evidence check.)
    annotation_services.evidence_version_bump(study.pk)
    return look


def sequential_section(study: Study) -> dict[str, Any]:
    """The sequential decision for the report: the design and the recorded looks, read only."""
    from scoring.stats.sequential import (
        SequentialDesign,
        planned_boundaries,
        sequential_status,
    )

    plan = SequentialPlan.objects.filter(study=study).first()
    if plan is None:
        return {
            "planned": False,
            "decided": False,
            "direction": None,
            "decision": "not_planned",
            "explanation": "the sequential design is fixed when the study opens",
        }
    design = SequentialDesign.from_dict(plan.design)
    looks = recorded_looks(study)
    status = sequential_status(design, looks)
    return {
        "planned": True,
        "unit": "completed items (all planned votes in); statistic: item-clustered score z",
        "design": design.as_dict(),
        "planning": plan.planning,
        "planned_boundaries": planned_boundaries(design),
        "looks": [look.as_dict() for look in looks],
        **status.as_dict(),
    }
