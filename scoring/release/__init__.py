"""Release: the evidence for shipping a tuned model and the sign-off gate, by use case.

- `policy`: the thresholds a study's gate applies (admins edit them).
- `evidence` (reads): detectors, metric kinds, criteria, the release report, the decision.
- `signoff` (writes): sign-offs, stale approvals when the evidence changes.
- `webhooks`: telling a pipeline that its run's decision changed.
- `runs`: training-run submission.
- `planning`: how many items a study needs, and whether it can ever pass.
- `sequential`: the study's sequential design and its recorded looks.

Callers import the use cases from `scoring.release`.
"""

from scoring.release.evidence import *  # noqa: F403
from scoring.release.planning import *  # noqa: F403
from scoring.release.policy import *  # noqa: F403
from scoring.release.runs import *  # noqa: F403
from scoring.release.sequential import *  # noqa: F403
from scoring.release.signoff import *  # noqa: F403
from scoring.release.webhooks import *  # noqa: F403
