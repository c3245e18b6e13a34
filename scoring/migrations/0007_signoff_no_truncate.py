"""TRUNCATE skips row triggers, so the UPDATE / DELETE triggers of 0004 did not stop it: a
statement trigger refuses TRUNCATE of the sign-off records too (PostgreSQL only)."""

from __future__ import annotations

from django.db import migrations

TABLES = ("scoring_signoff", "scoring_signoffinvalidation")


def install(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION evalplatform_refuse_change();"
        )


def remove(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};")


class Migration(migrations.Migration):
    dependencies = [("scoring", "0006_policy_win_rate_interval")]

    operations = [migrations.RunPython(install, remove)]
