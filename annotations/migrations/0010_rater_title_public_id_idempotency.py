"""Rater-facing study title and opaque id, the judgment's idempotency key, and a minimum
reading time that defaults to the pair's length (None) instead of "never flag" (0, kept for
existing studies)."""

import uuid

from django.db import migrations, models


def public_ids_fill(apps, schema_editor):
    Study = apps.get_model("annotations", "Study")
    for study in Study.objects.filter(public_id__isnull=True).only("pk"):
        study.public_id = uuid.uuid4()
        study.save(update_fields=["public_id"])


class Migration(migrations.Migration):
    dependencies = [("annotations", "0009_study_display_prefixes_blinding_audit")]

    operations = [
        migrations.AddField(
            model_name="study",
            name="rater_title",
            field=models.CharField(
                blank=True,
                help_text='Title raters see (blank: "Comparison study"). Never the internal name.',
                max_length=200,
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="public_id",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(public_ids_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="study",
            name="public_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AlterField(
            model_name="study",
            name="min_time_ms",
            field=models.PositiveIntegerField(
                blank=True,
                default=None,
                help_text="Flag judgments faster than this (ms). Blank: 1 s + 15 ms per 100 "
                "characters of both outputs; 0: never flag.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="judgment",
            name="idempotency_key",
            field=models.CharField(blank=True, editable=False, max_length=100, null=True),
        ),
        migrations.AddConstraint(
            model_name="judgment",
            constraint=models.UniqueConstraint(
                condition=models.Q(idempotency_key__isnull=False),
                fields=("rater", "idempotency_key"),
                name="judgment_rater_idempotency_key_unique",
            ),
        ),
    ]
