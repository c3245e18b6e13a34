"""Writes, by use case: `studies` (users, studies and their states, the audit log,
adjudication), `imports` (items and outputs into a study), `pending_imports` (uploads kept
until a researcher confirms the import preview), `blinding` (the blinding audit and the check
before a study opens), `raters` (assigning, invite and crowd links, removing a rater) and
`rating` (the rating queue and judgments).
Callers import the use cases from `annotations.services`."""

from annotations.services.blinding import *  # noqa: F403
from annotations.services.imports import *  # noqa: F403
from annotations.services.pending_imports import *  # noqa: F403
from annotations.services.raters import *  # noqa: F403
from annotations.services.rating import *  # noqa: F403
from annotations.services.studies import *  # noqa: F403
from annotations.services.tokens import *  # noqa: F403
