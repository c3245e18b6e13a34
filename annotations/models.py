"""Studies, items, the two outputs of each item, rater membership, assignments and judgments.

Models hold fields, constraints and trivial properties only; every write goes through
`annotations.services`.
"""

from __future__ import annotations

import uuid

from django.conf import settings as conf
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length

from annotations.blinding import strip_prefixes_problem


def validate_strip_prefixes(value: object) -> None:
    problem = strip_prefixes_problem(value)
    if problem:
        raise ValidationError(f"display_strip_prefixes: {problem}")


class TaskType(models.TextChoices):
    GENERATION = "generation", "Generation"
    CLASSIFICATION = "classification", "Classification"
    STRUCTURED = "structured", "Structured output"
    CHAT = "chat", "Chat"


class StudyStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    # "open" is the collecting state: the only one in which raters are served pairs.
    OPEN = "open", "Collecting"
    CLOSED = "closed", "Closed (paused)"
    RECONCILING = "reconciling", "Reconciling"
    READY = "ready", "Ready for sign-off"
    SIGNED_OFF = "signed_off", "Signed off"
    REJECTED = "rejected", "Rejected"


# The only moves a study can make. Entering signed_off or rejected is the sign-off's job
# (scoring.release), never a plain status update.
STUDY_TRANSITIONS: dict[str, frozenset[str]] = {
    StudyStatus.DRAFT: frozenset({StudyStatus.OPEN}),
    StudyStatus.OPEN: frozenset({StudyStatus.CLOSED, StudyStatus.RECONCILING}),
    StudyStatus.CLOSED: frozenset({StudyStatus.OPEN, StudyStatus.RECONCILING}),
    StudyStatus.RECONCILING: frozenset({StudyStatus.OPEN, StudyStatus.READY}),
    StudyStatus.READY: frozenset(
        {StudyStatus.RECONCILING, StudyStatus.SIGNED_OFF, StudyStatus.REJECTED}
    ),
    StudyStatus.SIGNED_OFF: frozenset({StudyStatus.RECONCILING}),
    StudyStatus.REJECTED: frozenset({StudyStatus.RECONCILING}),
}
SIGN_OFF_STATES = frozenset({StudyStatus.SIGNED_OFF, StudyStatus.REJECTED})


class QueueOrder(models.TextChoices):
    RANDOM = "random", "Random (unbiased sample)"
    UNCERTAIN_FIRST = "uncertain_first", "Where automation is unsure first"


class System(models.TextChoices):
    BASE = "base", "Base"
    TUNED = "tuned", "Tuned"


class Preference(models.TextChoices):
    BASE = "base", "Base"
    TUNED = "tuned", "Tuned"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class Choice(models.TextChoices):
    LEFT = "left", "Left (slot 1)"
    RIGHT = "right", "Right (slot 2)"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class AssignmentState(models.TextChoices):
    LEASED = "leased", "Leased"
    JUDGED = "judged", "Judged"
    SKIPPED = "skipped", "Skipped"


# What a rater sees of a study whose researcher gave it no rater title: never the internal name
# or slug (a pipeline run's slug is its run id, which usually names the model).
NEUTRAL_RATER_TITLE = "Comparison study"


class Study(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    # The study's id on every rater-facing page and URL: opaque, so a URL says nothing about
    # the study's internal name, run or models. Researcher URLs keep the slug.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    rater_title = models.CharField(
        max_length=200,
        blank=True,
        help_text=f'Title raters see (blank: "{NEUTRAL_RATER_TITLE}"). Never the internal name.',
    )
    task_type = models.CharField(max_length=20, choices=TaskType.choices)
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Votes wanted per item (k).")
    max_overlap = models.PositiveSmallIntegerField(
        default=5, help_text="Upper bound when split items ask for more votes."
    )
    instructions = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=StudyStatus.choices, default=StudyStatus.DRAFT)
    base_model = models.CharField(max_length=200, blank=True)
    tuned_model = models.CharField(max_length=200, blank=True)
    gold_rate = models.FloatField(
        default=0.0, help_text="Share of a rater's queue drawn from gold items (0-1)."
    )
    # Judgments faster than this are flagged (never refused). None: from the pair's length
    # (`annotations.queue_rules.min_reading_ms`); 0: no flag.
    min_time_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=None,
        help_text="Flag judgments faster than this (ms). Blank: 1 s + 15 ms per 100 characters "
        "of both outputs; 0: never flag.",
    )
    lease_minutes = models.PositiveSmallIntegerField(default=10)
    queue_order = models.CharField(
        max_length=20, choices=QueueOrder.choices, default=QueueOrder.RANDOM
    )
    # Metric and judge settings (regex, JSON schema, judge template ...), read by scoring.
    settings = models.JSONField(default=dict, blank=True)
    # Fixed openers (e.g. "Sure!") removed from both sides before raters see them
    # (annotations.blinding.display_text); the stored outputs keep them.
    display_strip_prefixes = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_strip_prefixes],
        help_text="Prefixes stripped from the start of both outputs on the rating page.",
    )
    # The latest blinding audit (annotations.blinding_audit), kept so pages do not recompute it.
    blinding_audit = models.JSONField(null=True, blank=True, editable=False)
    blinding_audit_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        conf.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Counts changes of the study's evidence (judgments, adjudications, scores, ...): a report
    # built at an older version is stale. Bumped after commit, outside the rater's transaction.
    evidence_version = models.BigIntegerField(default=0, editable=False)
    # Researchers who may change the study besides its owner (`created_by`); the rules are in
    # `annotations.permissions`.
    collaborators = models.ManyToManyField(
        conf.AUTH_USER_MODEL,
        through="StudyCollaborator",
        through_fields=("study", "user"),
        related_name="collaborating_studies",
        blank=True,
    )
    # A study with evidence (judgments, a run, sign-offs) is archived, never deleted: it keeps
    # its state and records and becomes read-only.
    archived_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="study_overlap_positive"),
            models.CheckConstraint(
                condition=Q(max_overlap__gte=models.F("overlap")), name="study_max_overlap_gte_k"
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="study_gold_rate_0_1"
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def title_for_raters(self) -> str:
        return self.rater_title or NEUTRAL_RATER_TITLE


class StudyCollaborator(models.Model):
    """A researcher who may change a study they do not own."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="collaborations")
    user = models.ForeignKey(
        conf.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collaborations"
    )
    added_by = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "user"], name="study_collaborator_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.study_id}:{self.user_id}"


class Item(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=200)
    prompt = models.TextField()
    reference = models.TextField(blank=True)
    label = models.CharField(max_length=200, blank=True, help_text="Gold label (classification).")
    task_type = models.CharField(max_length=20, choices=TaskType.choices, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    priority = models.FloatField(default=0.0, help_text="Higher is served first.")
    # Extra votes requested beyond the study's overlap when votes split (adaptive overlap).
    extra_votes = models.PositiveSmallIntegerField(default=0)
    # Kept out of the rating queue: `held` until a researcher decides (with the reason shown to
    # them), `excluded` for good; both leave existing judgments in place.
    held = models.BooleanField(default=False)
    hold_reason = models.CharField(max_length=500, blank=True)
    excluded = models.BooleanField(default=False)
    is_gold = models.BooleanField(default=False)
    gold_preference = models.CharField(max_length=10, choices=Preference.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "external_id"], name="item_external_id_unique"
            ),
            models.CheckConstraint(
                condition=Q(is_gold=False) | ~Q(gold_preference=""),
                name="gold_item_has_answer",
            ),
        ]
        indexes = [models.Index(fields=["study", "is_gold", "-priority"])]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.external_id}"


class Output(models.Model):
    # A random id: nothing about an output's id can hint at which system wrote it.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="outputs")
    system = models.CharField(max_length=10, choices=System.choices)
    model_name = models.CharField(max_length=200, blank=True)
    text = models.TextField()
    # Characters of `text`, kept by the database (a stored generated column): the report's
    # length-adjusted win rate reads it instead of counting the characters of every output
    # again on each build (a second of database CPU on 200,000 outputs).
    text_chars = models.GeneratedField(
        expression=Length("text"), output_field=models.PositiveIntegerField(), db_persist=True
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "system"], name="output_one_per_system"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}:{self.system}"


class StudyRater(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="memberships")
    rater = models.ForeignKey(
        conf.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="study_memberships"
    )
    # Drives the rater's own random item order (an affine permutation of item ids).
    order_multiplier = models.BigIntegerField()
    order_offset = models.BigIntegerField()
    # The queue's memo of the rater's next items with room (comma-separated ids, in their
    # order), so most requests pick among these instead of ordering the whole study again.
    # Every pick re-checks each condition; the memo only decides where to look first.
    queue_window = models.TextField(blank=True, default="", editable=False)
    queue_window_at = models.DateTimeField(null=True, blank=True, editable=False)
    added_at = models.DateTimeField(auto_now_add=True)
    # A removed rater keeps the row (and every judgment), gets no more pairs and no page of
    # the study; `annotations.services.raters.rater_remove` ends their open leases at once.
    removed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A crowd participant (`crowd_link` set): the id their platform gave them (Prolific,
    # MTurk), kept for payment reconciliation and in the judgments export.
    crowd_link = models.ForeignKey(
        "CrowdLink",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="memberships",
        editable=False,
    )
    participant_id = models.CharField(max_length=64, blank=True, default="", editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "rater"], name="study_rater_unique"),
            # Resuming with the same participant id on the same link finds the same account.
            models.UniqueConstraint(
                fields=["crowd_link", "participant_id"],
                condition=Q(crowd_link__isnull=False),
                name="study_rater_crowd_participant_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study_id}:{self.rater_id}"


class StudyInvite(models.Model):
    """A one-time link that lets one person join a study as a rater (a new account, or a rater
    already signed in). Only the SHA-256 of its token is stored: the link is shown once, when
    it is made. Its state (pending, accepted, expired, revoked) is read in
    `annotations.selectors.study_invite_rows`."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="invites")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # Set for an invite made from a list of names: the account it creates takes this name.
    username = models.CharField(max_length=150, blank=True, default="")
    created_by = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_by = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"invite {self.pk} to {self.study_id}"


class CrowdLink(models.Model):
    """An open link for crowd participants (Prolific, MTurk): each arrives with their platform's
    id in the URL parameter `param_name`, gets (or resumes) a rater account of their own on
    this study, judges at most `items_per_participant` pairs and is then shown
    `completion_code`. With `max_participants`, the link takes no new participant id once that
    many have joined: a leaked link cannot mint accounts without end. The token stays readable
    (the link is posted to the platform and copied again later); deactivating the link closes
    it."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="crowd_links")
    token = models.CharField(max_length=64, unique=True, editable=False)
    label = models.CharField(max_length=100, blank=True, default="")
    param_name = models.CharField(max_length=40, default="PROLIFIC_PID")
    items_per_participant = models.PositiveIntegerField()
    max_participants = models.PositiveIntegerField(null=True, blank=True)
    completion_code = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(items_per_participant__gte=1), name="crowd_link_cap_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_participants__isnull=True) | Q(max_participants__gte=1),
                name="crowd_link_participants_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"crowd link {self.pk} to {self.study_id}"


class Assignment(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    rater = models.ForeignKey(
        conf.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    # Drawn with `secrets` per assignment; never sent to the rater.
    left_system = models.CharField(max_length=10, choices=System.choices)
    state = models.CharField(
        max_length=10, choices=AssignmentState.choices, default=AssignmentState.LEASED
    )
    leased_until = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # A rater meets an item at most once: judged, skipped or held.
            models.UniqueConstraint(fields=["item", "rater"], name="assignment_item_rater_unique"),
        ]
        indexes = [
            models.Index(fields=["item", "state", "leased_until"]),
            models.Index(fields=["rater", "state", "leased_until"]),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk}"

    @property
    def right_system(self) -> str:
        return System.TUNED if self.left_system == System.BASE else System.BASE


class Judgment(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="judgment")
    # Denormalised from the assignment so a database constraint, not hope, keeps one vote per
    # rater and item, and reports aggregate without joins.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="judgments")
    rater = models.ForeignKey(
        conf.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgments"
    )
    choice = models.CharField(max_length=10, choices=Choice.choices)
    preferred = models.CharField(max_length=10, choices=Preference.choices)
    left_system = models.CharField(max_length=10, choices=System.choices)
    rationale = models.TextField(blank=True)
    time_ms = models.PositiveIntegerField(null=True, blank=True)
    # Faster than the study's minimum reading time: flagged for rater quality, never refused.
    flagged_fast = models.BooleanField(default=False)
    # The client's `Idempotency-Key`: a retried submission with the same key gets the original
    # answer back instead of a conflict or a second vote.
    idempotency_key = models.CharField(max_length=100, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "rater"], name="judgment_item_rater_unique"),
            models.UniqueConstraint(
                fields=["rater", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="judgment_rater_idempotency_key_unique",
            ),
        ]
        indexes = [models.Index(fields=["item", "preferred"])]

    def __str__(self) -> str:
        return f"judgment {self.pk}"


class Adjudication(models.Model):
    """A researcher's ruling on an item where raters split or disagree with the judge; reports
    use it in place of the human majority and show it as such."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="adjudication")
    preference = models.CharField(max_length=10, choices=Preference.choices)
    rationale = models.TextField()
    decided_by = models.ForeignKey(conf.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"adjudication of item {self.item_id}: {self.preference}"


class AuditEvent(models.Model):
    """Who changed what, when: every state change of a study, run and sign-off. Append-only:
    on PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE of this table.

    Deleting a study (allowed only while it holds no evidence) leaves its events as they are:
    `study` keeps the old id (no database constraint, nothing cascades or is set to NULL) and
    `study_slug` keeps the name the trail is found by. The slug of a deleted study is never
    given to a new one (`study_create`), so a trail never mixes two studies."""

    entity = models.CharField(max_length=20)  # "study", "run", "signoff", "policy"
    entity_id = models.CharField(max_length=200)
    study = models.ForeignKey(
        Study,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="audit_events",
    )
    study_slug = models.CharField(max_length=80, blank=True, db_index=True)
    action = models.CharField(max_length=40)
    before = models.CharField(max_length=40, blank=True)
    after = models.CharField(max_length=40, blank=True)
    # PROTECT: the trail may not lose its actors (the table refuses UPDATE, so SET_NULL could
    # not work anyway); deactivate a user instead of deleting them.
    actor = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["entity", "entity_id"])]

    def __str__(self) -> str:
        return f"{self.entity} {self.entity_id}: {self.action} {self.before}->{self.after}"
