"""Pre-scoring records: jobs and their chunks, per-output and per-study metric values, model
perplexities, LLM-judge verdicts (and their response cache) and identity-leak flags.

Every stored value names its metric and version, and a unique key per (output or study, metric,
version) makes re-running a job write nothing twice.
"""

from __future__ import annotations

from django.conf import settings as conf
from django.db import models

from annotations.models import Item, Output, Study, System


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    DONE_WITH_ERRORS = "done_with_errors", "Done with errors"


class ChunkKind(models.TextChoices):
    ITEM_METRICS = "item_metrics", "Item metrics"
    CORPUS_METRICS = "corpus_metrics", "Corpus metrics"
    JUDGE = "judge", "LLM judge"
    FLUENCY = "fluency", "Fluency perplexity"
    MODEL_PERPLEXITY = "model_perplexity", "Model perplexity"
    # Runs model-written code: its own queue and worker, inside the bubblewrap sandbox.
    CODE_EXEC = "code_exec", "Code execution"


class ChunkState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ScoringJob(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="scoring_jobs")
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.PENDING)
    metrics = models.JSONField(
        default=list, blank=True, help_text="Empty: every applicable metric."
    )
    judge = models.JSONField(default=dict, blank=True, help_text="Judge settings used by this job.")
    # Model-based scores that were not computed, and why (no model configured, ...).
    skipped = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"scoring job {self.pk} ({self.status})"


class ScoringChunk(models.Model):
    job = models.ForeignKey(ScoringJob, on_delete=models.CASCADE, related_name="chunks")
    kind = models.CharField(max_length=20, choices=ChunkKind.choices)
    index = models.PositiveIntegerField()
    item_ids = models.JSONField(default=list)
    # Extra arguments of the chunk (e.g. which system's model perplexity to measure).
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=ChunkState.choices, default=ChunkState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    # Held by the worker running the chunk, renewed by its heartbeat; a pending chunk whose lease
    # ran out lost its worker, and the sweep enqueues it again (scoring.services.chunks_sweep).
    lease_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "kind", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "kind", "index"], name="chunk_unique"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.kind} #{self.index} of job {self.job_id}"


class OutputScore(models.Model):
    """One item-level metric value for one output (base or tuned)."""

    output = models.ForeignKey(Output, on_delete=models.CASCADE, related_name="scores")
    # Denormalised so aggregation per study and system needs no join through outputs.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="output_scores")
    system = models.CharField(max_length=10, choices=System.choices)
    metric = models.CharField(max_length=80)
    version = models.CharField(max_length=20)
    value = models.FloatField()
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["output", "metric", "version"], name="output_score_unique"
            ),
        ]
        indexes = [models.Index(fields=["item", "metric"])]

    def __str__(self) -> str:
        return f"{self.metric}={self.value:.4g} ({self.system}, item {self.item_id})"


class StudyScore(models.Model):
    """A corpus-level metric (accuracy, macro-F1, corpus BLEU, model perplexity ...) per system."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="study_scores")
    system = models.CharField(max_length=10, choices=System.choices)
    metric = models.CharField(max_length=80)
    version = models.CharField(max_length=20)
    values = models.JSONField(default=dict)
    detail = models.JSONField(default=dict, blank=True)
    n_items = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study", "system", "metric", "version"], name="study_score_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric} ({self.system}, study {self.study_id})"


class JudgeVerdict(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="judge_verdicts")
    judge_id = models.CharField(max_length=300)
    template = models.CharField(max_length=80)
    p_tuned = models.FloatField(help_text="Probability that the tuned output is better.")
    verdict = models.CharField(max_length=10)
    position_bias = models.BooleanField(default=False)
    raw = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "judge_id"], name="judge_verdict_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} p={self.p_tuned:.3f} (item {self.item_id})"


class JudgeCacheEntry(models.Model):
    """Responses of a judge endpoint keyed by judge, template and inputs: re-runs cost nothing."""

    key = models.CharField(max_length=64, unique=True)
    # The judge's id: a job loads its judge's entries once instead of querying per answer.
    namespace = models.CharField(max_length=300, db_index=True, default="")
    value = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key


class IdentityDecision(models.TextChoices):
    PENDING = "pending", "Pending"
    KEEP = "keep", "Keep"
    EXCLUDE = "exclude", "Exclude the item"
    EDITED = "edited", "Edited"


class IdentityFlag(models.Model):
    output = models.OneToOneField(Output, on_delete=models.CASCADE, related_name="identity_flag")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="identity_flags")
    matches = models.JSONField(default=list)
    decision = models.CharField(
        max_length=10, choices=IdentityDecision.choices, default=IdentityDecision.PENDING
    )
    decided_by = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"identity flag on item {self.item_id} ({self.decision})"


class ExportKind(models.TextChoices):
    REPORT_JSON = "report_json", "Report (JSON)"
    REPORT_HTML = "report_html", "Report (HTML)"
    REPORT_CSV = "report_csv", "Report summary (CSV)"
    ITEMS_CSV = "items_csv", "Item-level rows (CSV)"
    ITEMS_JSONL = "items_jsonl", "Item-level rows (JSONL)"
    JUDGMENTS_CSV = "judgments_csv", "Judgments (CSV)"
    JUDGMENTS_JSONL = "judgments_jsonl", "Judgments (JSONL)"
    DPO_JSONL = "dpo_jsonl", "Preference pairs for DPO (JSONL)"


class ExportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ReportExport(models.Model):
    """A report or export built by a background task into a file (never inside a request)."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="exports")
    kind = models.CharField(max_length=20, choices=ExportKind.choices)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=ExportStatus.choices, default=ExportStatus.PENDING
    )
    file_path = models.CharField(max_length=500, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    rows = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} export {self.pk} ({self.status})"


# --- training runs and release sign-off ---------------------------------------------------------


class TrainingRun(models.Model):
    """A training job's submission: its study, the held-out evidence and the training log."""

    run_id = models.CharField(max_length=200, unique=True)
    # sha256 of the canonical submission: the same id with the same content is idempotent,
    # with different content a conflict.
    payload_sha256 = models.CharField(max_length=64)
    study = models.OneToOneField(Study, on_delete=models.PROTECT, related_name="training_run")
    holdout_study = models.OneToOneField(
        Study, null=True, blank=True, on_delete=models.PROTECT, related_name="holdout_of_run"
    )
    base_model = models.CharField(max_length=300)
    tuned_model = models.CharField(max_length=300)
    training_log = models.JSONField(default=dict, blank=True, help_text="Parsed loss curves.")
    webhook_url = models.URLField(max_length=500, blank=True)
    last_notified_decision = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.run_id


class ReleasePolicy(models.Model):
    """What the evidence must show before a tuned model may ship (defaults from settings)."""

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="release_policy")
    min_human_votes = models.PositiveIntegerField()
    min_krippendorff_alpha = models.FloatField()
    require_win_ci_above_half = models.BooleanField()
    max_forgetting_perplexity_increase = models.FloatField()
    max_forgetting_metric_drop = models.FloatField()
    # {metric name: margin in its units}; metrics not named use max_forgetting_metric_drop.
    forgetting_metric_margins = models.JSONField(default=dict, blank=True)
    forbid_overfitting = models.BooleanField()
    min_judge_human_agreement = models.FloatField(null=True, blank=True)
    require_three_metric_kinds = models.BooleanField()
    required_approvals = models.PositiveSmallIntegerField()
    win_rate_interval = models.CharField(
        max_length=10,
        choices=[("item", "items like these, this panel"), ("panel", "new raters too")],
        default="item",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"release policy of study {self.study_id}"


class SignOffDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("sign-off records are immutable")

    def delete(self):
        raise PermissionError("sign-off records are immutable")


class SignOff(models.Model):
    """A release owner's approval or rejection of exactly one report (by its SHA-256).

    Never edited or deleted: `save()` refuses updates, the queryset refuses bulk update and
    delete, the admin offers neither, and on PostgreSQL a trigger refuses UPDATE and DELETE.
    A later change of the evidence is recorded as a `SignOffInvalidation`, not an edit."""

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="signoffs")
    run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.PROTECT, related_name="signoffs"
    )
    decision = models.CharField(max_length=10, choices=SignOffDecision.choices)
    comment = models.TextField()
    signed_by = models.ForeignKey(conf.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    report_sha256 = models.CharField(max_length=64)
    report_json = models.TextField(help_text="The canonical JSON report that was approved.")
    policy = models.JSONField()
    criteria = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            # One vote per person on one version of the evidence.
            models.UniqueConstraint(
                fields=["study", "signed_by", "report_sha256"], name="signoff_once_per_report"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decision} of study {self.study_id} by {self.signed_by_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError("sign-off records are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("sign-off records are immutable")


class SignOffInvalidation(models.Model):
    """The evidence behind a sign-off changed after it was given: the sign-off is stale."""

    signoff = models.OneToOneField(SignOff, on_delete=models.PROTECT, related_name="invalidation")
    new_report_sha256 = models.CharField(max_length=64)
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"sign-off {self.signoff_id} stale"


class WebhookDelivery(models.Model):
    run = models.ForeignKey(
        TrainingRun, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    payload = models.JSONField()
    status = models.CharField(max_length=10, default="pending")  # pending, delivered, failed
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"webhook {self.pk} for {self.run_id} ({self.status})"


class SequentialPlan(models.Model):
    """A study's group-sequential design, fixed when rating starts (maximum items, looks by
    item counts, the alpha-spending function): `scoring.stats.sequential.SequentialDesign`."""

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="sequential_plan")
    design = models.JSONField()
    planning = models.JSONField(default=dict, blank=True, help_text="The power plan behind it.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"sequential plan of study {self.study_id}"


class SequentialLook(models.Model):
    """One interim look, recorded once: the alpha it spent is spent. Reading or rebuilding a
    report reads these rows and never adds one; only the evidence-change path does."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="sequential_looks")
    number = models.PositiveIntegerField()
    n_items = models.PositiveIntegerField()
    record = models.JSONField(help_text="scoring.stats.sequential.LookRecord as JSON")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        ordering = ["study", "number"]
        constraints = [
            models.UniqueConstraint(fields=["study", "number"], name="sequential_look_once"),
        ]

    def __str__(self) -> str:
        return f"look {self.number} of study {self.study_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError("a recorded look is never changed")
        super().save(*args, **kwargs)


class ReportBuild(models.Model):
    """The latest build of a study's report for one set of options, and the evidence key it was
    built at (`scoring.report_builds.evidence_key`): `GET .../report/` answers from it while
    the key is current."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="report_builds")
    options_key = models.CharField(max_length=200)
    evidence_key = models.CharField(max_length=200)
    schema_version = models.CharField(max_length=40)
    report_json = models.TextField()
    sha256 = models.CharField(max_length=64)
    built_at = models.DateTimeField()
    build_seconds = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "options_key"], name="report_build_once"),
        ]

    def __str__(self) -> str:
        return f"report of study {self.study_id} ({self.options_key}) at {self.evidence_key}"


class StudyPlanning(models.Model):
    """How many items (and votes per item) the study needs to detect the planned win-rate
    difference, and what the study as imported can show (`scoring.release.planning`).
    Recomputed when the study is created, when items are imported and when it opens."""

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="planning")
    data = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"planning of study {self.study_id}"

    @property
    def summary(self) -> str:
        return str(self.data.get("summary", ""))
