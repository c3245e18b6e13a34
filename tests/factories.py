"""Test data built through the real services, so tests exercise the same write paths as users."""

from __future__ import annotations

import itertools
import json
from typing import Any

from annotations import services
from annotations.importers import parse_jsonl
from annotations.models import Study, StudyStatus

_counter = itertools.count(1)

BASE_MODEL = "acme-base-7b-zq"
TUNED_MODEL = "acme-tuned-7b-zq"


def make_user(role: str = "rater", username: str | None = None, password: str = "pw-123456"):
    name = username or f"{role}{next(_counter)}"
    return services.user_create(username=name, password=password, role=role)


def pair_records(n: int, *, prefix: str = "item", gold: int = 0) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        records.append(
            {
                "id": f"{prefix}-{i:05d}",
                "prompt": f"Question {i}: explain topic {i} briefly.",
                "base": f"Base answer {i} from the first model.",
                "tuned": f"Tuned answer {i}, more complete and polite.",
                "reference": f"Reference answer {i}.",
            }
        )
    for i in range(gold):
        records.append(
            {
                "id": f"gold-{i:03d}",
                "prompt": f"Gold question {i}",
                "base": "correct answer",
                "tuned": "wrong answer",
                "gold": "base",
            }
        )
    return records


def jsonl_bytes(records: list[dict[str, Any]]) -> bytes:
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


def make_study(
    *,
    items: int = 10,
    overlap: int = 3,
    raters: list | None = None,
    status: str = StudyStatus.OPEN,
    gold: int = 0,
    slug: str | None = None,
    owner=None,
    **fields: Any,
) -> Study:
    """A study with `items` pairs; `owner` (a researcher) may change it (see
    annotations.permissions)."""
    # Adaptive overlap off unless a test asks for it, so "exactly k votes" stays exact.
    fields.setdefault("max_overlap", overlap)
    study = services.study_create(
        created_by=owner,
        slug=slug or f"study-{next(_counter)}",
        name="Test study",
        task_type="generation",
        overlap=overlap,
        status=status,
        base_model=BASE_MODEL,
        tuned_model=TUNED_MODEL,
        **fields,
    )
    parsed = parse_jsonl(jsonl_bytes(pair_records(items, gold=gold)), file="test.jsonl")
    services.items_import(study=study, parsed=parsed, source="test.jsonl")
    if raters:
        services.raters_assign(study=study, usernames=[r.username for r in raters])
    return study
