"""Signals that connect annotations to apps it must not import (the style guide's one use).

`evidence_changed` fires after a transaction that changed a study's human evidence (a judgment,
an adjudication, an import) commits; scoring listens to record sequential looks, mark sign-offs
stale and notify pipelines. `study_opened` fires after a study first moves to open; scoring
fixes its sequential design then. `study_created` lets scoring plan the study's size.
"""

from __future__ import annotations

from django.dispatch import Signal

evidence_changed = Signal()  # kwargs: study_id, kind ("votes" or "items")
study_opened = Signal()  # kwargs: study_id
study_created = Signal()  # kwargs: study_id
