from __future__ import annotations

from django.contrib import admin

from annotations.models import (
    Adjudication,
    Assignment,
    AuditEvent,
    Item,
    Judgment,
    Output,
    Study,
    StudyRater,
)


class OutputInline(admin.TabularInline):
    model = Output
    extra = 0
    fields = ("system", "model_name", "text")


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "task_type", "overlap", "status", "queue_order", "created_at")
    list_filter = ("status", "task_type")
    search_fields = ("slug", "name")


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("external_id", "study", "is_gold", "priority", "created_at")
    list_filter = ("study", "is_gold")
    search_fields = ("external_id", "prompt")
    inlines = [OutputInline]
    list_select_related = ("study",)


@admin.register(StudyRater)
class StudyRaterAdmin(admin.ModelAdmin):
    list_display = ("study", "rater", "added_at")
    list_select_related = ("study", "rater")
    exclude = ("order_multiplier", "order_offset")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "rater", "left_system", "state", "leased_until")
    list_filter = ("state",)
    list_select_related = ("item__study", "rater")
    raw_id_fields = ("item",)


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "item",
        "rater",
        "choice",
        "preferred",
        "time_ms",
        "flagged_fast",
        "created_at",
    )
    list_filter = ("preferred", "flagged_fast")
    list_select_related = ("item__study", "rater")
    raw_id_fields = ("assignment", "item")
    # Votes are evidence: the admin may read them, not rewrite them.
    readonly_fields = (
        "assignment",
        "item",
        "rater",
        "choice",
        "preferred",
        "left_system",
        "rationale",
        "time_ms",
        "flagged_fast",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Adjudication)
class AdjudicationAdmin(admin.ModelAdmin):
    list_display = ("item", "preference", "decided_by", "updated_at")
    raw_id_fields = ("item",)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "entity", "entity_id", "action", "before", "after", "actor")
    list_filter = ("entity", "action")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
