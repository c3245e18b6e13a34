"""On PostgreSQL, the database itself refuses UPDATE and DELETE of sign-off records (and of
their invalidations), whatever code path tries: raw SQL, a bulk query, another program."""

from __future__ import annotations

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION evalplatform_refuse_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'sign-off records are immutable (%% on %%)', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
"""
TABLES = ("scoring_signoff", "scoring_signoffinvalidation")


def install(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION)
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION evalplatform_refuse_change();"
        )


def remove(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table};")


class Migration(migrations.Migration):
    dependencies = [("scoring", "0003_release")]

    operations = [migrations.RunPython(install, remove)]
