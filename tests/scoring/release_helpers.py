"""Shared builders for the release tests (a run submission and its voting)."""

from __future__ import annotations

from typing import Any

from annotations import services
from annotations.models import Item

HF_LOG = [
    {"loss": 2.10, "learning_rate": 5e-5, "epoch": 0.25, "step": 50},
    {"eval_loss": 2.00, "eval_runtime": 3.1, "epoch": 0.25, "step": 50},
    {"loss": 1.70, "learning_rate": 4e-5, "epoch": 0.5, "step": 100},
    {"eval_loss": 1.75, "eval_runtime": 3.0, "epoch": 0.5, "step": 100},
    {"loss": 1.50, "learning_rate": 3e-5, "epoch": 0.75, "step": 150},
    {"eval_loss": 1.60, "eval_runtime": 3.0, "epoch": 0.75, "step": 150},
    {"loss": 1.40, "learning_rate": 2e-5, "epoch": 1.0, "step": 200},
    {"eval_loss": 1.52, "eval_runtime": 3.0, "epoch": 1.0, "step": 200},
    {"train_runtime": 120.0, "train_loss": 1.6, "epoch": 1.0, "step": 200},
]


def submission(
    run_id: str = "run-001", *, items: int = 12, raters: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    payload = {
        "run_id": run_id,
        "base_model": "acme/base-7b",
        "tuned_model": "acme/support-tuned-7b",
        "task_type": "generation",
        "items": [
            {
                "id": f"t{i:03d}",
                "prompt": f"How do I reset setting {i}?",
                "base": f"Open the menu {i}.",
                "tuned": f"Open Settings, choose option {i} and press Reset.",
                "reference": f"Open Settings, choose option {i} and press Reset.",
            }
            for i in range(items)
        ],
        "holdout": [
            {
                "id": f"h{i:03d}",
                "prompt": f"General question {i}",
                "base": f"The capital of country {i} is city {i}.",
                "tuned": f"The capital of country {i} is city {i}.",
                "reference": f"The capital of country {i} is city {i}.",
            }
            for i in range(6)
        ],
        "training_log": HF_LOG,
        "raters": raters or [],
        "overlap": 2,
    }
    payload.update(extra)
    return payload


def vote_all(client_for_rater: dict, slug: str, prefer: str = "tuned") -> int:
    """Every rater judges every pair they are offered, preferring `prefer` (base on item t000,
    so agreement has something to agree about). Returns the number of votes."""
    from annotations.models import Assignment

    total = 0
    for client in client_for_rater.values():
        while True:
            response = client.get(f"/api/v1/queue/next/?study={slug}")
            if response.status_code == 204:
                break
            assert response.status_code == 200, response.content
            assignment = Assignment.objects.select_related("item").get(
                pk=response.json()["assignment"]
            )
            wanted = "base" if assignment.item.external_id in ("t000", "t001") else prefer
            choice = "1" if assignment.left_system == wanted else "2"
            result = client.post(
                f"/api/v1/assignments/{assignment.pk}/judgment/",
                {"choice": choice, "time_ms": 4000},
                format="json",
            )
            assert result.status_code == 201, result.content
            total += 1
    return total


def items_of(slug: str) -> list[Item]:
    return list(Item.objects.filter(study__slug=slug).order_by("id"))


def make_ready(slug: str, actor) -> None:
    from annotations.models import Study

    study = Study.objects.get(slug=slug)
    study = services.study_transition(study=study, target="reconciling", actor=actor)
    services.study_transition(study=study, target="ready", actor=actor)
