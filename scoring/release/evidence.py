"""Reads: the detectors, the metric kinds, the criteria, the release report and the decision.

The decision evaluates the policy's criteria against one report (`release_report`: the research
report plus the detectors and criteria), identified by the SHA-256 of its canonical JSON. Every
function here only reads: marking sign-offs stale happens on the evidence-change path
(`scoring.release.signoff.evidence_check`), never while someone looks at the decision.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from typing import Any

from annotations.models import Study
from scoring.models import (
    ReleasePolicy,
    SignOff,
    StudyScore,
    TrainingRun,
)
from scoring.reports import ReportOptions, build_report, canonical_json, win_decision
from scoring.stats.evidence_grid import evidence_quantized

__all__ = [
    "criterion",
    "decision_get",
    "evaluate_criteria",
    "evidence_json",
    "evidence_sha256",
    "forgetting_section",
    "json_safe",
    "metric_kinds_present",
    "overfitting_section",
    "release_report",
    "signoff_rows",
    "study_report",
]


from scoring.release.policy import policy_as_dict, policy_get


def json_safe(value: Any) -> Any:
    """Dataclass output as JSON data: tuples become lists, NaN and infinities become null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def overfitting_section(run: TrainingRun | None, policy: ReleasePolicy) -> dict[str, Any]:
    from scoring.stats.training import detect_overfitting, parse_training_log

    if run is None or not run.training_log:
        return {"evaluated": False, "flagged": None, "reasons": ["no training log submitted"]}
    log = parse_training_log(run.training_log["raw"], source="training_log")
    # The checkpoint that ships: named by the run, else by the log (trainer state), else last.
    report = detect_overfitting(log, checkpoint_step=run.training_log.get("checkpoint_step"))
    data = json_safe(asdict(report))
    # Too few evaluations to judge is "not evaluated": the gate must not read it as a pass.
    data["evaluated"] = report.status != "insufficient_data"
    return data


def forgetting_section(run: TrainingRun | None, policy: ReleasePolicy) -> dict[str, Any]:
    from scoring.selectors import study_scores
    from scoring.stats.forgetting import MetricDelta, detect_forgetting

    if run is None or run.holdout_study is None:
        return {
            "evaluated": False,
            "flagged": None,
            "reasons": ["no general hold-out set submitted"],
        }
    holdout = run.holdout_study
    perplexity = {
        row.system: row.values.get("corpus_perplexity_token_weighted")
        for row in StudyScore.objects.filter(study=run.study, metric="model_perplexity_holdout")
    }
    deltas = {
        m.metric: MetricDelta(
            base=m.base,
            tuned=m.tuned,
            delta=m.delta,
            ci_low=m.delta_ci95[0] if m.delta_ci95 else float("nan"),
            ci_high=m.delta_ci95[1] if m.delta_ci95 else float("nan"),
            lower_is_better=m.lower_is_better,
        )
        for m in study_scores(study=holdout, n_resamples=1_000).metrics
    }
    report = detect_forgetting(
        perplexity_base=perplexity.get("base"),
        perplexity_tuned=perplexity.get("tuned"),
        metric_deltas=deltas,
        max_perplexity_increase=policy.max_forgetting_perplexity_increase,
        max_metric_drop=policy.max_forgetting_metric_drop,
        metric_margins=policy.forgetting_metric_margins,
    )
    return json_safe(asdict(report))


def metric_kinds_present(
    report: dict[str, Any], overfitting: dict[str, Any]
) -> dict[str, list[str]]:
    """The three kinds of evidence the policy asks for, with the metrics that provide each."""
    from scoring.metrics import registry

    known = {m.name: m.kind for m in registry.all_metrics()}
    task, general = [], []
    for name in list(report.get("metrics", {})) + [
        c["metric"].split("@")[0] for c in report.get("corpus_metrics", [])
    ]:
        base_name = name.split(":")[0]
        if "perplexity" in base_name:
            general.append(name)
        elif known.get(base_name) == "task":
            task.append(name)
        elif known.get(base_name) == "general_quality":
            general.append(name)
    if report.get("judge"):
        general.append("llm_judge")
    overfit = ["train_validation_gap"] if overfitting.get("evaluated") else []
    return {
        "task": sorted(set(task)),
        "general_quality": sorted(set(general)),
        "overfitting": overfit,
    }


# --- the release report and decision --------------------------------------------------------


def criterion(
    name: str, passed: bool | None, evidence: str, *, required: bool = True
) -> dict[str, Any]:
    return {"name": name, "passed": passed, "required": required, "evidence": evidence}


def _fmt3(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def evaluate_criteria(
    report: dict[str, Any], release: dict[str, Any], policy: ReleasePolicy
) -> list[dict]:
    votes = report.get("judgments", 0)
    alpha = report.get("agreement", {}).get("krippendorff_alpha")
    # The same verdict as the report's summary, on the interval the policy chooses.
    win_verdict = win_decision(
        report.get("win_rate") or {}, report.get("decision") or {}, policy.win_rate_interval
    )
    judge_human = report.get("judge_human") or {}
    kinds = release["metric_kinds"]
    overfit = release["overfitting"]
    forget = release["forgetting"]
    rows = [
        criterion(
            "human_votes",
            votes >= policy.min_human_votes,
            f"{votes} votes (minimum {policy.min_human_votes})",
        ),
        criterion(
            "agreement",
            alpha is not None and alpha >= policy.min_krippendorff_alpha,
            f"Krippendorff's alpha {alpha:.3f} (minimum {policy.min_krippendorff_alpha})"
            if alpha is not None
            else "Krippendorff's alpha not available (needs items with two or more votes)",
        ),
        criterion(
            "win_rate_ci_above_half",
            win_verdict["status"] == "tuned_preferred",
            f"{win_verdict['status'].replace('_', ' ')} ({policy.win_rate_interval}-level "
            f"interval): {win_verdict['reason']}",
            required=policy.require_win_ci_above_half,
        ),
        criterion(
            "no_forgetting",
            forget.get("evaluated") and not forget.get("flagged"),
            "; ".join(forget.get("reasons") or []) or "no forgetting beyond the thresholds",
        ),
        criterion(
            "no_overfitting",
            overfit.get("evaluated") and not overfit.get("flagged"),
            "; ".join(overfit.get("reasons") or []) or "no overfitting signal",
            required=policy.forbid_overfitting,
        ),
    ]
    if policy.min_judge_human_agreement is not None:
        agreement = judge_human.get("agreement")
        rows.append(
            criterion(
                "judge_human_agreement",
                agreement is not None and agreement >= policy.min_judge_human_agreement,
                f"judge-human agreement {agreement:.3f}, scored pairwise as a human is "
                f"(human-human {_fmt3(judge_human.get('human_human_agreement'))}; "
                f"minimum {policy.min_judge_human_agreement})"
                if agreement is not None
                else "no judge verdicts to compare",
            )
        )
    missing = [k for k, v in kinds.items() if not v]
    rows.append(
        criterion(
            "three_metric_kinds",
            not missing,
            "present: "
            + "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in kinds.items())
            + (f" (missing: {', '.join(missing)})" if missing else ""),
            required=policy.require_three_metric_kinds,
        )
    )
    return rows


def release_report(*, study: Study, options: ReportOptions | None = None) -> dict[str, Any]:
    """The report a release owner approves: the research report plus the detectors, the
    metric kinds, the policy and every criterion. Sign-offs use the default options."""
    run = TrainingRun.objects.filter(study=study).select_related("holdout_study", "study").first()
    policy = policy_get(study=study)
    report = build_report(study=study, options=options)
    overfitting = overfitting_section(run, policy)
    release = {
        "run_id": run.run_id if run else None,
        "overfitting": overfitting,
        "forgetting": forgetting_section(run, policy),
        "metric_kinds": metric_kinds_present(report, overfitting),
        "policy": policy_as_dict(policy),
    }
    release["criteria"] = evaluate_criteria(report, release, policy)
    release["verdict"] = (
        "pass" if all(c["passed"] for c in release["criteria"] if c["required"]) else "fail"
    )
    report["release"] = release
    return report


def study_report(*, study: Study, options: ReportOptions | None = None) -> dict[str, Any]:
    """The report of a study, the one the JSON API, the HTML page and every export show: the
    research report, and for a training run's study the release evidence (training curves,
    detectors, criteria) too, since that is what its readers decide on."""
    if TrainingRun.objects.filter(study=study).exists():
        return release_report(study=study, options=options)
    return build_report(study=study, options=options)


def evidence_json(report: dict[str, Any]) -> str:
    """Canonical JSON of the evidence, the text a sign-off stores and hashes: the study's
    workflow state is not evidence, so moving it (e.g. ready -> signed_off) never changes the
    hash; floats are quantized (`evidence_float`), so the hash is the same on every CPU."""
    evidence = dict(report)
    evidence["study"] = {k: v for k, v in report.get("study", {}).items() if k != "status"}
    return canonical_json(evidence_quantized(evidence))


def evidence_sha256(report: dict[str, Any]) -> str:
    return hashlib.sha256(evidence_json(report).encode("utf-8")).hexdigest()


def signoff_rows(study: Study, *, current_sha: str | None = None) -> list[dict[str, Any]]:
    """The study's sign-offs in order. A sign-off is stale once its invalidation is recorded;
    with `current_sha`, one whose report differs from the current evidence is shown stale too
    (the evidence check records it shortly after the change; a read never writes)."""
    rows = []
    signoffs = SignOff.objects.filter(study=study).select_related("signed_by", "invalidation")
    for s in signoffs.order_by("id"):
        invalidation = getattr(s, "invalidation", None)
        moved = current_sha is not None and s.report_sha256 != current_sha
        rows.append(
            {
                "id": s.pk,
                "decision": s.decision,
                "by": s.signed_by.username,
                "comment": s.comment,
                "report_sha256": s.report_sha256,
                "created_at": s.created_at.isoformat(),
                "stale": invalidation is not None or moved,
                "stale_reason": invalidation.reason
                if invalidation
                else "the evidence changed after this sign-off"
                if moved
                else None,
            }
        )
    return rows


def decision_get(*, study: Study) -> dict[str, Any]:
    """Each criterion with its evidence, the overall verdict, the sign-offs (stale ones marked)
    and the study's state. A pure read: it neither marks sign-offs stale nor moves the study
    (`scoring.release.signoff.evidence_check` does that when the evidence changes)."""
    report = release_report(study=study)
    sha = evidence_sha256(report)
    release = report["release"]
    return {
        "study": study.slug,
        "run_id": release["run_id"],
        "state": study.status,
        "verdict": release["verdict"],
        "criteria": release["criteria"],
        "overfitting": release["overfitting"],
        "forgetting": release["forgetting"],
        "metric_kinds": release["metric_kinds"],
        "policy": release["policy"],
        "report_sha256": sha,
        "signoffs": signoff_rows(study, current_sha=sha),
        "summary": report.get("verdict", {}).get("summary"),
    }
