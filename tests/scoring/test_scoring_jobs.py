from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.test import override_settings

from annotations import services as annotation_services
from annotations.models import Item, Output, QueueOrder, System
from scoring import services
from scoring.models import (
    ChunkState,
    IdentityFlag,
    JobStatus,
    JudgeVerdict,
    OutputScore,
    ScoringChunk,
    StudyScore,
)
from scoring.selectors import job_progress, study_scores
from tests.conftest import api_client_for
from tests.factories import make_study, make_user

pytestmark = pytest.mark.django_db


def start_job(eager_celery, study, **kwargs):
    with eager_celery(execute=True):
        job = services.scoring_job_start(study=study, **kwargs)
    job.refresh_from_db()
    return job


def test_job_scores_every_item_and_rerun_writes_nothing_twice(eager_celery) -> None:
    study = make_study(items=12, overlap=1)
    job = start_job(eager_celery, study)
    assert job.status == JobStatus.DONE
    progress = job_progress(job=job)
    assert progress.done == progress.total and progress.failed == 0
    scored = OutputScore.objects.filter(item__study=study)
    # Generation with references: exact match, sentence BLEU and ROUGE-1/2/L for both outputs.
    assert set(scored.values_list("metric", flat=True)) >= {
        "exact_match",
        "sentence_bleu",
        "rouge1",
        "rouge2",
        "rougeL",
    }
    per_output = scored.filter(metric="rougeL").count()
    assert per_output == 24
    assert StudyScore.objects.filter(study=study, metric="corpus_bleu").count() == 2
    before = scored.count()
    second = start_job(eager_celery, study)
    assert second.status == JobStatus.DONE
    assert scored.count() == before
    assert (
        OutputScore.objects.filter(item__study=study)
        .values("output", "metric", "version")
        .distinct()
        .count()
        == before
    )


def test_only_missing_scores_are_computed(eager_celery) -> None:
    study = make_study(items=4, overlap=1)
    start_job(eager_celery, study)
    victim = OutputScore.objects.filter(item__study=study, metric="rouge1").first()
    victim_key = (victim.output_id, victim.metric)
    untouched_ids = set(OutputScore.objects.exclude(pk=victim.pk).values_list("pk", flat=True))
    victim.delete()
    start_job(eager_celery, study)
    assert OutputScore.objects.filter(output_id=victim_key[0], metric="rouge1").count() == 1
    assert untouched_ids <= set(OutputScore.objects.values_list("pk", flat=True))


def test_model_scorers_are_skipped_with_reasons_not_failures(eager_celery) -> None:
    study = make_study(items=2, overlap=1)
    job = start_job(eager_celery, study)
    scorers = {s["scorer"] for s in job.skipped}
    assert scorers == {"judge", "fluency_perplexity", "model_perplexity"}
    assert all(s["reason"] for s in job.skipped)
    assert job.status == JobStatus.DONE


def test_unknown_metric_is_a_clear_error() -> None:
    study = make_study(items=1)
    from annotations.errors import DomainValidationError

    with pytest.raises(DomainValidationError, match="unknown metric"):
        services.scoring_job_start(study=study, metrics=["bleu_typo"])


def test_bad_metric_setting_fails_the_chunk_with_its_reason(eager_celery) -> None:
    study = make_study(items=2, overlap=1)
    study = annotation_services.study_update(
        study=study, task_type="structured", settings={"regex": "(unclosed"}
    )
    job = start_job(eager_celery, study, metrics=["regex_match"])
    assert job.status == JobStatus.DONE_WITH_ERRORS
    failed = ScoringChunk.objects.get(job=job, state=ChunkState.FAILED)
    assert "regex" in failed.error.lower()


def test_identity_leak_holds_item_until_researcher_decides(eager_celery) -> None:
    rater, researcher = make_user(), make_user("researcher")
    study = make_study(items=2, overlap=1, raters=[rater])
    leaky = Item.objects.filter(study=study).order_by("id").first()
    Output.objects.filter(item=leaky, system=System.TUNED).update(
        text="As an AI developed by OpenAI, I think so."
    )
    start_job(eager_celery, study)
    leaky.refresh_from_db()
    assert leaky.held and "identity leak" in leaky.hold_reason
    flag = IdentityFlag.objects.get(item=leaky)
    offered = []
    while (a := annotation_services.assignment_next(study=study, rater=rater)) is not None:
        offered.append(a.item_id)
        annotation_services.judgment_submit(assignment_id=a.pk, rater=rater, choice="1")
    assert leaky.pk not in offered
    services.identity_flag_decide(
        flag_id=flag.pk, decision="edited", user=researcher, edited_text="I think so."
    )
    leaky.refresh_from_db()
    assert not leaky.held
    assert Output.objects.get(item=leaky, system=System.TUNED).text == "I think so."
    assert annotation_services.assignment_next(study=study, rater=rater).item_id == leaky.pk
    summary = study_scores(study=study)
    assert summary.identity_flags["total"] == 1


def test_uncertain_first_routing_orders_the_queue() -> None:
    rater = make_user()
    study = make_study(items=5, overlap=1, raters=[rater], queue_order=QueueOrder.UNCERTAIN_FIRST)
    items = list(Item.objects.filter(study=study).order_by("id"))
    for item, p in zip(items, [0.95, 0.52, 0.1, 0.7, 0.45], strict=True):
        JudgeVerdict.objects.create(
            item=item, judge_id="j", template="t", p_tuned=p, verdict="tuned" if p > 0.5 else "base"
        )
    services.routing_priorities_update(study=study)
    order = []
    while (a := annotation_services.assignment_next(study=study, rater=rater)) is not None:
        order.append(a.item_id)
        annotation_services.judgment_submit(assignment_id=a.pk, rater=rater, choice="tie")
    assert order[:2] == [items[1].pk, items[4].pk]
    assert order[-1] in (items[0].pk, items[2].pk)


def test_random_order_resets_priorities() -> None:
    study = make_study(items=3, overlap=1)
    Item.objects.filter(study=study).update(priority=5)
    services.routing_priorities_update(study=study)
    assert set(Item.objects.filter(study=study).values_list("priority", flat=True)) == {0.0}


class FakeJudgeHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that always prefers the answer labelled A."""

    requests = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        json.loads(self.rfile.read(length))
        type(self).requests += 1
        body = {
            "choices": [
                {
                    "message": {"role": "assistant", "content": "[[A]]"},
                    "logprobs": {
                        "content": [
                            {"token": "[[", "logprob": -0.01, "top_logprobs": []},
                            {
                                "token": "A",
                                "logprob": -0.1,
                                "top_logprobs": [
                                    {"token": "A", "logprob": -0.1},
                                    {"token": "B", "logprob": -2.5},
                                    {"token": "C", "logprob": -4.0},
                                ],
                            },
                            {"token": "]]", "logprob": -0.01, "top_logprobs": []},
                        ]
                    },
                }
            ]
        }
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake_judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudgeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeJudgeHandler.requests = 0
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    # A typed-in judge address must be allow-listed (and never receives the server's key).
    with override_settings(JUDGE_ALLOWED_BASE_URLS=[url]):
        yield url
    server.shutdown()


def test_http_judge_through_a_job_detects_position_bias_and_caches(
    eager_celery, fake_judge_url
) -> None:
    study = make_study(items=3, overlap=1)
    judge = {
        "backend": "openai",
        "model": "fake-judge",
        "base_url": fake_judge_url,
        "max_retries": 0,
    }
    job = start_job(eager_celery, study, metrics=["judge"], judge=judge)
    assert job.status == JobStatus.DONE, job_progress(job=job)
    verdicts = JudgeVerdict.objects.filter(item__study=study)
    assert verdicts.count() == 3
    # The judge always picks the first position, so both orders disagree: a tie and a bias event.
    assert set(verdicts.values_list("verdict", flat=True)) == {"tie"}
    assert all(verdicts.values_list("position_bias", flat=True))
    assert FakeJudgeHandler.requests == 6
    JudgeVerdict.objects.all().delete()
    start_job(eager_celery, study, metrics=["judge"], judge=judge)
    assert FakeJudgeHandler.requests == 6  # every answer came from the cache
    summary = study_scores(study=study)
    assert summary.judges[0].position_bias_rate == 1.0


@pytest.mark.ml
def test_perplexity_and_local_judge_on_a_tiny_model(eager_celery, tiny_model_path) -> None:
    study = make_study(items=3, overlap=1)
    study = annotation_services.study_update(
        study=study,
        settings={
            "fluency_model": tiny_model_path,
            "base_model_path": tiny_model_path,
            "tuned_model_path": tiny_model_path,
            "holdout_texts": ["The river runs to the city.", "A student explains the report."],
            # A study-edited template short enough for the tiny model's 128-token context.
            "judge": {
                "backend": "local",
                "model": tiny_model_path,
                "device": "cpu",
                "template": {
                    "base": "mtbench_pairwise",
                    "system": "Judge.",
                    "user": "Q: {question}\nA: {answer_1}\nB: {answer_2}\nVerdict:",
                },
            },
        },
    )
    job = start_job(eager_celery, study, metrics=["fluency", "model_perplexity", "judge"])
    assert job.status == JobStatus.DONE, job_progress(job=job)
    fluency = OutputScore.objects.filter(item__study=study, metric__startswith="fluency_perplexity")
    assert fluency.count() == 6 and all(v > 1 for v in fluency.values_list("value", flat=True))
    holdout = StudyScore.objects.filter(study=study, metric="model_perplexity_holdout")
    assert holdout.count() == 2
    # Same weights on both sides: the forgetting comparison must show no difference.
    base, tuned = (
        holdout.get(system=s).values["corpus_perplexity_token_weighted"] for s in ("base", "tuned")
    )
    assert base == pytest.approx(tuned)
    verdicts = JudgeVerdict.objects.filter(item__study=study)
    job.refresh_from_db()
    assert verdicts.count() == 3, (job.warnings, job.skipped)
    assert all(0.0 <= p <= 1.0 for p in verdicts.values_list("p_tuned", flat=True))


def test_raters_never_see_scores(study) -> None:
    rater = study.memberships.first().rater
    client = api_client_for(rater)
    for url in [
        f"/api/v1/studies/{study.slug}/scores/",
        f"/api/v1/studies/{study.slug}/scores/export/",
        f"/api/v1/studies/{study.slug}/identity-flags/",
    ]:
        assert client.get(url).status_code == 403
    assert (
        client.post(f"/api/v1/studies/{study.slug}/prescore/", {}, format="json").status_code == 403
    )


def test_prescore_api_and_exports(eager_celery, researcher, researcher_api) -> None:
    study = make_study(items=3, overlap=1, owner=researcher)
    with eager_celery(execute=True):
        response = researcher_api.post(f"/api/v1/studies/{study.slug}/prescore/", {}, format="json")
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    status = researcher_api.get(f"/api/v1/scoring-jobs/{job_id}/").json()
    assert status["status"] == "done" and status["done"] == status["total"]
    scores = researcher_api.get(f"/api/v1/studies/{study.slug}/scores/?items=1").json()
    rouge = next(m for m in scores["metrics"] if m["metric"] == "rougeL")
    assert rouge["n"] == 3 and len(rouge["delta_ci95"]) == 2
    assert len(scores["items"]) == 3
    out = io.StringIO()
    call_command("export_scores", study.slug, "--format", "jsonl", stdout=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {"item_id", "system", "metric", "version", "value"} == set(rows[0])
    assert {r["system"] for r in rows} == {"base", "tuned"}


def test_classification_advice_flags_a_class_with_low_recall(eager_celery) -> None:
    import json as json_module

    from annotations.importers import parse_jsonl

    study = annotation_services.study_create(slug="cls", name="cls", task_type="classification")
    records = [
        {
            "id": f"c{i}",
            "prompt": "label it",
            "label": "spam" if i < 2 else "ham",
            "base": "ham",
            "tuned": "spam" if i < 2 else "ham",
        }
        for i in range(12)
    ]
    data = "\n".join(json_module.dumps(r) for r in records).encode()
    annotation_services.items_import(study=study, parsed=parse_jsonl(data, file="c"), source="c")
    start_job(eager_celery, study)
    advice = study_scores(study=study).advice
    base_messages = [a["message"] for a in advice if a["message"].startswith("base:")]
    # The base model never predicts "spam": recall 0 for it despite 83% accuracy.
    assert any("spam" in m and "recall" in m.lower() for m in base_messages), advice
    assert not any(
        "spam" in a["message"] and "recall" in a["message"].lower()
        for a in advice
        if a["message"].startswith("tuned:")
    )
