from __future__ import annotations

from django.contrib import admin

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
class ScoringJobAdmin(admin.ModelAdmin):
    list_display = ("id", "study", "status", "created_at", "finished_at")
    list_filter = ("status",)


@admin.register(ScoringChunk)
class ScoringChunkAdmin(admin.ModelAdmin):
    list_display = ("id", "job", "kind", "index", "state", "attempts")
    list_filter = ("kind", "state")


@admin.register(OutputScore)
class OutputScoreAdmin(admin.ModelAdmin):
    list_display = ("item", "system", "metric", "version", "value")
    list_filter = ("metric",)
    raw_id_fields = ("output", "item")


@admin.register(StudyScore)
class StudyScoreAdmin(admin.ModelAdmin):
    list_display = ("study", "system", "metric", "version", "n_items")


@admin.register(JudgeVerdict)
class JudgeVerdictAdmin(admin.ModelAdmin):
    list_display = ("item", "judge_id", "verdict", "p_tuned", "position_bias")
    raw_id_fields = ("item",)


@admin.register(IdentityFlag)
class IdentityFlagAdmin(admin.ModelAdmin):
    list_display = ("item", "output", "decision", "decided_by", "decided_at")
    raw_id_fields = ("item", "output")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Evidence records: visible to admins, never changed or deleted through the admin."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SignOff)
class SignOffAdmin(ReadOnlyAdmin):
    list_display = ("id", "study", "decision", "signed_by", "report_sha256", "created_at")
    list_select_related = ("study", "signed_by")


@admin.register(SignOffInvalidation)
class SignOffInvalidationAdmin(ReadOnlyAdmin):
    list_display = ("signoff", "reason", "new_report_sha256", "created_at")


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("run_id", "study", "base_model", "tuned_model", "created_at")
    readonly_fields = ("payload_sha256", "training_log", "last_notified_decision")


@admin.register(ReleasePolicy)
class ReleasePolicyAdmin(admin.ModelAdmin):
    list_display = ("study", "min_human_votes", "min_krippendorff_alpha", "required_approvals")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "run", "status", "attempts", "last_status_code", "created_at")


@admin.register(ReportExport)
class ReportExportAdmin(admin.ModelAdmin):
    list_display = ("id", "study", "kind", "status", "rows", "created_at")
