from __future__ import annotations

from django.db import migrations


def create_group(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.get_or_create(name="release_owner")


class Migration(migrations.Migration):
    dependencies = [("annotations", "0005_lifecycle_audit")]

    operations = [migrations.RunPython(create_group, migrations.RunPython.noop)]
