"""The admin role is staff without being a superuser: give its group the permissions it needs
to manage users and roles and read every record in the Django admin
(`annotations.roles.ADMIN_PERMISSIONS`, `ADMIN_VIEW_APPS`). New databases get the same from
`annotations.services.roles_ensure`."""

from __future__ import annotations

from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.db.models import Q

ADMIN_VIEW_APPS = ("auth", "annotations", "scoring")
ADMIN_PERMISSIONS = (
    ("auth", "add_user"),
    ("auth", "change_user"),
    ("auth", "delete_user"),
    ("annotations", "change_study"),
    ("scoring", "change_releasepolicy"),
)


def grant(apps, schema_editor) -> None:
    # Permissions are normally created after all migrations ran (post_migrate); make sure the
    # rows exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(
            app_config, verbosity=0, using=schema_editor.connection.alias, apps=apps
        )
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name="admin")
    wanted = Q(content_type__app_label__in=ADMIN_VIEW_APPS, codename__startswith="view_")
    for app_label, codename in ADMIN_PERMISSIONS:
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    group.permissions.add(*permission_model.objects.filter(wanted))


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0012_audit_append_only"),
        ("scoring", "0007_signoff_no_truncate"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
