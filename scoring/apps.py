from __future__ import annotations

from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Pre-scoring, agreement and reports"
    default_auto_field = "django.db.models.BigAutoField"
