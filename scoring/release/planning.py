"""Planning before rating: how many items (and votes per item) a study needs to detect the
planned win-rate difference with the planned power at the expected agreement (the design
effect, `scoring.stats.power`), and whether the study as imported can ever pass the gate.

Computed when a study is created, when items are imported and when it opens; stored
(`StudyPlanning`) so the study page, `create_study` and a run's answer read it without knowing
this module. The items needed cap the sequential design's maximum (`scoring.release.sequential`).

`study.settings["planning"]` may set `difference` (default 0.05: 0.55 against 0.50), `power`
(0.8), `alpha` (0.05), `expected_icc` (0.5: the intraclass correlation of the vote score within
an item, i.e. Krippendorff's interval alpha on the scores; 0 means raters never agree beyond
chance, 1 that they always do) and `tie_share` (0.15).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from annotations.models import Item, Study
from scoring.models import StudyPlanning

__all__ = ["PLANNING_DEFAULTS", "planning_compute", "planning_update"]

PLANNING_DEFAULTS = {
    "difference": 0.05,
    "power": 0.8,
    "alpha": 0.05,
    "expected_icc": 0.5,
    "tie_share": 0.15,
}


def planning_compute(study: Study) -> dict[str, Any]:
    """The plan of `study` as JSON data (see the module docstring)."""
    from scoring.stats.power import gate_reach, items_needed, votes_per_item_options

    config = {**PLANNING_DEFAULTS, **((study.settings or {}).get("planning") or {})}
    common = {
        "icc": float(config["expected_icc"]),
        "tie_share": float(config["tie_share"]),
        "alpha": float(config["alpha"]),
        "power": float(config["power"]),
    }
    votes = int(study.overlap)
    needed = items_needed(difference=float(config["difference"]), votes_per_item=votes, **common)
    options = votes_per_item_options(difference=float(config["difference"]), **common)
    rated = Item.objects.filter(study=study, is_gold=False, excluded=False).count()
    reach = gate_reach(rated, votes, **common) if rated else None
    summary = needed.summary
    if reach is None:
        summary += " No items imported yet."
    elif not reach.can_pass:
        summary += f" This study has {rated:,} items: it can never pass the gate. " + reach.summary
    elif rated < needed.n_items:
        summary += (
            f" This study has {rated:,} items, fewer than that: {reach.summary} Add items for "
            "the planned power."
        )
    else:
        summary += f" This study has {rated:,} items: enough. {reach.summary}"
    return {
        "assumptions": config,
        "needed": asdict(needed),
        "by_votes_per_item": [
            {"votes_per_item": o.votes_per_item, "n_items": o.n_items, "n_votes": o.n_votes}
            for o in options
        ],
        "rated_items": rated,
        "reach": asdict(reach) if reach else None,
        "enough_items": reach is not None and rated >= needed.n_items,
        "can_ever_pass": bool(reach and reach.can_pass),
        "summary": summary,
    }


def planning_update(*, study: Study) -> StudyPlanning:
    """Computes and stores the study's plan (idempotent)."""
    from scoring.release.evidence import json_safe  # NaN (nothing detectable) becomes null

    planning, _ = StudyPlanning.objects.update_or_create(
        study=study, defaults={"data": json_safe(planning_compute(study))}
    )
    return planning
