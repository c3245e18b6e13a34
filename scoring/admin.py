"""Scoring records in the Django admin: read-only (they are evidence or derived from it), except
a release policy, whose edits go through `scoring.release.policy_update` (admins only,
audited). Runs follow their study: nothing about a run is changed here."""

from __future__ import annotations

from django.contrib import admin, messages

from annotations.admin import ReadOnlyAdmin
from annotations.errors import DomainError
from scoring.models import (
    IdentityFlag,
    JudgeVerdict,
    OutputScore,
    ReleasePolicy,
    ReportExport,
    ScoringChunk,
    ScoringJob,
    SignOff,
    SignOffInvalidation,
    StudyScore,
    TrainingRun,
    WebhookDelivery,
)


@admin.register(ScoringJob)
class ScoringJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "study", "status", "created_at", "finished_at")
    list_filter = ("status",)


@admin.register(ScoringChunk)
class ScoringChunkAdmin(ReadOnlyAdmin):
    list_display = ("id", "job", "kind", "index", "state", "attempts")
    list_filter = ("kind", "state")


@admin.register(OutputScore)
class OutputScoreAdmin(ReadOnlyAdmin):
    list_display = ("item", "system", "metric", "version", "value")
    list_filter = ("metric",)


@admin.register(StudyScore)
class StudyScoreAdmin(ReadOnlyAdmin):
    list_display = ("study", "system", "metric", "version", "n_items")


@admin.register(JudgeVerdict)
class JudgeVerdictAdmin(ReadOnlyAdmin):
    list_display = ("item", "judge_id", "verdict", "p_tuned", "position_bias")


@admin.register(IdentityFlag)
class IdentityFlagAdmin(ReadOnlyAdmin):
    """Decided on the study's scores page (`identity_flag_decide`), not here."""

    list_display = ("item", "output", "decision", "decided_by", "decided_at")


@admin.register(SignOff)
class SignOffAdmin(ReadOnlyAdmin):
    list_display = ("id", "study", "decision", "signed_by", "report_sha256", "created_at")
    list_select_related = ("study", "signed_by")


@admin.register(SignOffInvalidation)
class SignOffInvalidationAdmin(ReadOnlyAdmin):
    list_display = ("signoff", "reason", "new_report_sha256", "created_at")


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    list_display = ("run_id", "study", "base_model", "tuned_model", "created_at")


@admin.register(ReleasePolicy)
class ReleasePolicyAdmin(admin.ModelAdmin):
    list_display = ("study", "min_human_votes", "min_krippendorff_alpha", "required_approvals")
    readonly_fields = ("study",)

    def has_add_permission(self, request) -> bool:
        return False  # every study gets its policy from the defaults (`policy_get`)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        """Through `policy_update`: the admin-role check and the audit event."""
        from scoring.release import POLICY_FIELDS, policy_update

        fields = {k: form.cleaned_data[k] for k in form.changed_data if k in POLICY_FIELDS}
        try:
            policy_update(study=obj.study, actor=request.user, **fields)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "run", "status", "attempts", "last_status_code", "created_at")


@admin.register(ReportExport)
class ReportExportAdmin(ReadOnlyAdmin):
    list_display = ("id", "study", "kind", "status", "rows", "created_at")
