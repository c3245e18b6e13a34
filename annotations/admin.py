"""The Django admin: users and roles, and a read view of every record.

The admin is no back door: evidence (items, outputs, assignments, judgments, adjudications, the
audit log) is read-only here, a study's status is never edited as a field, and every change the
admin does make goes through the same service as the API and leaves an audit event (editing a
study's fields: `study_update`; the actions "close" and "archive": `study_transition`,
`study_archive`). Nothing is deleted here."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from annotations import services
from annotations.errors import DomainError
from annotations.models import (
    Adjudication,
    Assignment,
    AuditEvent,
    CrowdLink,
    Item,
    Judgment,
    Output,
    Study,
    StudyCollaborator,
    StudyInvite,
    StudyRater,
    StudyStatus,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records visible to admins, never added, changed or deleted through the admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class OutputInline(ReadOnlyInline):
    model = Output
    fields = ("system", "model_name", "text")


class CollaboratorInline(ReadOnlyInline):
    model = StudyCollaborator
    fk_name = "study"
    fields = ("user", "added_by", "added_at")
    readonly_fields = fields


def run_service(modeladmin, request, queryset, service, done: str) -> None:
    """Calls `service(study=..., actor=...)` for each selected study, reporting each refusal."""
    ok = 0
    for study in queryset:
        try:
            service(study=study, actor=request.user)
        except DomainError as exc:
            modeladmin.message_user(request, f"{study.slug}: {exc.message}", messages.ERROR)
        else:
            ok += 1
    if ok:
        modeladmin.message_user(request, f"{ok} stud{'y' if ok == 1 else 'ies'} {done}.")


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "task_type",
        "overlap",
        "status",
        "archived_at",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "task_type")
    search_fields = ("slug", "name")
    readonly_fields = ("slug", "status", "created_by", "archived_at", "created_at", "updated_at")
    inlines = [CollaboratorInline]
    actions = ["close_studies", "archive_studies"]

    def has_add_permission(self, request) -> bool:
        # Studies are created on the study pages or through the API (owner, audit).
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # A study with evidence is archived, never deleted (the "archive" action).
        return False

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.archived_at is not None:
            return [f.name for f in Study._meta.concrete_fields]  # noqa: SLF001
        return self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        """Field edits go through `study_update`, which validates and audits them."""
        fields = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in services.STUDY_EDITABLE_FIELDS
        }
        try:
            services.study_update(study=obj, actor=request.user, **fields)
        except DomainError as exc:
            # The form was valid, so this is a rule of the service (e.g. archived): say it.
            self.message_user(request, exc.message, messages.ERROR)

    @admin.action(description="Close the selected studies (stop serving pairs)")
    def close_studies(self, request, queryset) -> None:
        def close(*, study, actor):
            return services.study_transition(
                study=study, target=StudyStatus.CLOSED, actor=actor, reason="closed in the admin"
            )

        run_service(self, request, queryset, close, "closed")

    @admin.action(description="Archive the selected studies (read-only, kept with evidence)")
    def archive_studies(self, request, queryset) -> None:
        def archive(*, study, actor):
            return services.study_archive(study=study, actor=actor, reason="archived in the admin")

        run_service(self, request, queryset, archive, "archived")


@admin.register(Item)
class ItemAdmin(ReadOnlyAdmin):
    list_display = ("external_id", "study", "is_gold", "priority", "created_at")
    list_filter = ("study", "is_gold")
    search_fields = ("external_id", "prompt")
    inlines = [OutputInline]
    list_select_related = ("study",)


@admin.register(StudyRater)
class StudyRaterAdmin(ReadOnlyAdmin):
    """Membership changes (invites, crowd links, removal) go through the study's raters page
    (`annotations.services.raters`), audited."""

    list_display = ("study", "rater", "added_at", "removed_at", "crowd_link", "participant_id")
    list_filter = ("study",)
    search_fields = ("rater__username", "participant_id")
    list_select_related = ("study", "rater", "crowd_link")
    exclude = ("order_multiplier", "order_offset", "queue_window", "queue_window_at")
    readonly_fields = ("removed_at", "crowd_link", "participant_id")


@admin.register(StudyInvite)
class StudyInviteAdmin(ReadOnlyAdmin):
    list_display = ("id", "study", "username", "created_at", "expires_at", "accepted_by")
    list_select_related = ("study", "accepted_by")
    exclude = ("token_hash",)


@admin.register(CrowdLink)
class CrowdLinkAdmin(ReadOnlyAdmin):
    list_display = ("id", "study", "label", "items_per_participant", "deactivated_at")
    list_select_related = ("study",)
    exclude = ("token",)


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ("id", "item", "rater", "left_system", "state", "leased_until")
    list_filter = ("state",)
    list_select_related = ("item__study", "rater")


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    """Votes are evidence: the admin may read them, not rewrite or delete them."""

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


@admin.register(Adjudication)
class AdjudicationAdmin(ReadOnlyAdmin):
    list_display = ("item", "preference", "decided_by", "updated_at")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "entity",
        "entity_id",
        "study_slug",
        "action",
        "before",
        "after",
        "actor",
    )
    list_filter = ("entity", "action")
    search_fields = ("study_slug", "entity_id")


# --- users and roles ------------------------------------------------------------------------

User = get_user_model()


class RoleAwareUserAdmin(UserAdmin):
    """The admin role manages users and their roles (groups) but cannot make anyone a
    superuser or hand out single permissions: that stays with a superuser. A role change is
    audited."""

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["is_superuser", "user_permissions"]
        return fields

    def save_related(self, request, form, formsets, change) -> None:
        user = form.instance
        before = sorted(user.groups.values_list("name", flat=True)) if change else []
        super().save_related(request, form, formsets, change)
        after = sorted(user.groups.values_list("name", flat=True))
        if before != after or not change:
            services.audit_record(
                entity="user",
                entity_id=user.get_username(),
                action="roles" if change else "created",
                actor=request.user,
                before=",".join(before)[:40],
                after=",".join(after)[:40],
                details={"before": before, "after": after},
            )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, RoleAwareUserAdmin)
