"""Pure automatic metrics: plain data in, plain data out.

Nothing under ``scoring.metrics`` may import Django, DRF, Celery, torch, transformers or
``annotations`` (enforced by import-linter). Entry points: :func:`registry.score_outputs` to run
every applicable metric, :mod:`aggregate` for study-level bootstrap intervals and
:mod:`advice` for caveats. Importing this package is cheap; the metric modules (and
scikit-learn, sacrebleu, rouge-score) load on first use of the registry.
"""

from __future__ import annotations
