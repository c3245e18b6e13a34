from __future__ import annotations

from django.contrib import admin

from scoring.models import (
    IdentityFlag,
    JudgeVerdict,
    OutputScore,
    ScoringChunk,
    ScoringJob,
    StudyScore,
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
