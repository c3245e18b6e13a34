"""The demo's training run: a support-assistant fine-tune submitted by its pipeline, rated by
the three demo raters and ready for the release owner's sign-off.

Everything goes through the services a real run goes through: `run_submit` (the submission
serializer, the study and its hold-out study, rating opened, pre-scoring started), the admin's
`policy_update`, each rater's `assignment_next` and `judgment_submit`, the evidence check that
records the sequential look, and the researcher's moves to reconciling and ready. Nothing here
writes a row itself, so the demo shows what the platform computes from these inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotations import services as annotation_services
from annotations.demo_data import demo_records
from annotations.errors import NotFoundError
from annotations.models import StudyStatus
from scoring.models import TrainingRun
from scoring.release import evidence_check, policy_update, run_get, run_submit

__all__ = ["DEMO_RUN_ID", "demo_run_payload", "demo_run_seed"]

DEMO_RUN_ID = "support-sft-demo"
TRAINER_STATE = Path(__file__).resolve().parent / "trainer_state.json"

# The demo has no LLM judge and no model for perplexity or fluency (they need an API key or a
# GPU), so its admin-set policy leaves out the two criteria only they can meet; the sign-off
# page shows the policy, and three-kinds stays on the page as informational.
DEMO_POLICY = {
    "min_human_votes": 90,  # 31 items x 3 raters
    "min_judge_human_agreement": None,
    "require_three_metric_kinds": False,
}

# General questions the fine-tune never trained on (the forgetting check): the tuned model still
# answers them word for word as the base model does (greedy decoding), so every hold-out metric
# is non-inferior. (Sixteen items are few: any change would leave intervals wider than the
# policy's 0.02 margin, "too imprecise", which is what a real run of this size would be told.)
HOLDOUT_ANSWERS: list[tuple[str, str, str]] = [  # (question, answer of both models, reference)
    (
        "What is the boiling point of water at sea level in Celsius?",
        "Water boils at 100 degrees Celsius at sea level.",
        "100 degrees Celsius.",
    ),
    (
        "Who wrote 'Pride and Prejudice'?",
        "Jane Austen wrote 'Pride and Prejudice'.",
        "Jane Austen.",
    ),
    ("How many continents are there?", "There are seven continents.", "Seven."),
    (
        "What gas do plants absorb from the air for photosynthesis?",
        "Plants absorb carbon dioxide.",
        "Carbon dioxide.",
    ),
    ("Convert 5 kilometres to metres.", "5 kilometres is 5,000 metres.", "5,000 metres."),
    (
        "What is the largest ocean on Earth?",
        "The Pacific Ocean is the largest.",
        "The Pacific Ocean.",
    ),
    (
        "What does CPU stand for?",
        "CPU stands for central processing unit.",
        "Central processing unit.",
    ),
    (
        "In which year did the first person walk on the Moon?",
        "In 1969, during Apollo 11.",
        "1969 (Apollo 11).",
    ),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au.", "Au."),
    ("How many minutes are in a day?", "A day has 1,440 minutes.", "1,440 minutes."),
    (
        "Name the process by which a liquid turns into a gas.",
        "That process is called evaporation.",
        "Evaporation.",
    ),
    ("What is the square root of 81?", "The square root of 81 is 9.", "9."),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet.", "Mars."),
    (
        "What language is mainly spoken in Brazil?",
        "Portuguese is the main language of Brazil.",
        "Portuguese.",
    ),
    ("How many sides does a hexagon have?", "A hexagon has six sides.", "Six."),
    (
        "What is the freezing point of water in Fahrenheit?",
        "Water freezes at 32 degrees Fahrenheit.",
        "32 degrees Fahrenheit.",
    ),
]
HOLDOUT: list[dict[str, str]] = [
    {
        "id": f"hold-{n:02d}",
        "prompt": question,
        "base": answer,
        "tuned": answer,
        "reference": reference,
    }
    for n, (question, answer, reference) in enumerate(HOLDOUT_ANSWERS, start=1)
]

# The three raters' votes on each item, in rater order: t tuned, b base, = tie, x both bad.
# Read from the pairs: the tuned model wins where it is correct and complete, loses where it
# is wrong (gen-006's 429, gen-013's battery advice, cls-006's label), and ties where both are
# equally right; raters split on a few close calls.
VOTES: dict[str, str] = {
    "gen-001": "ttt", "gen-002": "ttt", "gen-003": "ttt", "gen-004": "t=t", "gen-005": "ttt",
    "gen-006": "bbb", "gen-007": "ttt", "gen-008": "===", "gen-009": "ttt", "gen-010": "=b=",
    "gen-011": "ttt", "gen-012": "===", "gen-013": "bbb", "gen-014": "ttt", "gen-015": "tt=",
    "gen-016": "ttt",
    "cls-001": "===", "cls-002": "ttt", "cls-003": "===", "cls-004": "ttt", "cls-005": "ttt",
    "cls-006": "bbb", "cls-007": "===", "cls-008": "===", "cls-009": "===", "cls-010": "ttt",
    "json-001": "ttt", "json-002": "==t", "json-003": "ttt", "json-004": "t=t", "json-005": "===",
}  # fmt: skip
SYSTEM_OF = {"t": "tuned", "b": "base"}
CHOICE_OF = {"=": "tie", "x": "both_bad"}
# What a rater wrote on the close calls (the disagreement review shows it).
RATIONALES: dict[tuple[str, int], str] = {
    ("gen-004", 1): "Both explanations are correct; the tuned one is friendlier but no better.",
    ("gen-010", 1): "The numbered list is clearer, and it asks for screenshots.",
    ("gen-015", 2): "Same content; citing Article 17 adds little for a customer.",
    ("json-002", 2): "Both valid; 'never arrived' is closer to the message.",
    ("json-004", 1): "Tuned wraps the JSON in a code fence, base gives order_id as a number.",
}
# How long each rater reads, relative to the others (their judgments are timed like real ones).
READING_PACE = (1.0, 1.35, 0.8)


def demo_run_items() -> list[dict[str, Any]]:
    """The demo study's pairs without its attention items (the run has none)."""
    return [record for record in demo_records() if record["id"] in VOTES]


def demo_run_payload() -> dict[str, Any]:
    """The submission the demo pipeline sends: the same shape as `POST /api/v1/runs/`."""
    return {
        "run_id": DEMO_RUN_ID,
        "name": "Support assistant SFT (demo run)",
        "base_model": "Qwen/Qwen2.5-0.5B-Instruct",
        "tuned_model": "demo/support-assistant-qwen2.5-0.5b-sft",
        "task_type": "generation",
        "items": demo_run_items(),
        "holdout": HOLDOUT,
        "training_log": json.loads(TRAINER_STATE.read_text(encoding="utf-8")),
        "overlap": 3,
    }


def reading_ms(record: dict[str, Any], rater_index: int) -> int:
    chars = len(record["prompt"]) + len(record["base"]) + len(record["tuned"])
    return int((4_000 + 12 * chars) * READING_PACE[rater_index])


def demo_votes_cast(*, study, raters: list[AbstractBaseUser]) -> int:
    """Each rater takes the pairs the queue serves them, as the rating page does, and votes as
    `VOTES` says (the slot is resolved from the side the pair was shown on). Returns the count."""
    records = {record["id"]: record for record in demo_run_items()}
    cast = 0
    for index, rater in enumerate(raters):
        while assignment := annotation_services.assignment_next(study=study, rater=rater):
            item_id = assignment.item.external_id
            vote = VOTES[item_id][index]
            if vote in SYSTEM_OF:
                choice = "1" if assignment.left_system == SYSTEM_OF[vote] else "2"
            else:
                choice = CHOICE_OF[vote]
            annotation_services.judgment_submit(
                assignment_id=assignment.pk,
                rater=rater,
                choice=choice,
                rationale=RATIONALES.get((item_id, index), ""),
                time_ms=reading_ms(records[item_id], index),
            )
            cast += 1
    return cast


def demo_run_seed(
    *,
    researcher: AbstractBaseUser,
    admin: AbstractBaseUser,
    raters: list[AbstractBaseUser],
) -> tuple[TrainingRun, bool]:
    """The demo run, made once: submitted by `researcher` (the pipeline's account), its policy
    set by `admin`, rated by `raters` (three, in order), then moved to ready for sign-off.
    Returns (run, created); an existing demo run is returned untouched. Pre-scoring runs when
    the transaction commits (in-process without a broker)."""
    try:
        return run_get(run_id=DEMO_RUN_ID), False
    except NotFoundError:
        pass
    if len(raters) != len(READING_PACE):
        raise ValueError(f"the demo run has votes for {len(READING_PACE)} raters")
    with transaction.atomic():
        run, _ = run_submit(
            payload={**demo_run_payload(), "raters": [r.get_username() for r in raters]},
            actor=researcher,
        )
        study = run.study
        policy_update(study=study, actor=admin, **DEMO_POLICY)
        demo_votes_cast(study=study, raters=raters)
        # The check the debounce window would run after the last vote: it records the
        # sequential look over the completed items.
        evidence_check(study_id=study.pk)
        for target, reason in (
            (StudyStatus.RECONCILING, "every item has its three votes"),
            (StudyStatus.READY, "disagreements reviewed; ready for sign-off"),
        ):
            study = annotation_services.study_transition(
                study=study, target=target, actor=researcher, reason=reason
            )
    run.refresh_from_db()
    return run, True
