"""Signals that connect annotations to apps it must not import (the style guide's one use).

`evidence_changed` fires after a transaction that changed a study's human evidence (a judgment,
an adjudication) commits; scoring listens to mark sign-offs stale and notify pipelines.
"""

from __future__ import annotations

from django.dispatch import Signal

evidence_changed = Signal()  # kwargs: study_id
