"""The release policy of a study: the thresholds its sign-off gate applies; admins edit it."""

from __future__ import annotations

import copy
import math
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotations import roles
from annotations import services as annotation_services
from annotations.errors import (
    DomainPermissionError,
    DomainValidationError,
)
from annotations.models import Study
from scoring.models import (
    ReleasePolicy,
)

__all__ = [
    "POLICY_FIELDS",
    "metric_margins_checked",
    "policy_as_dict",
    "policy_get",
    "policy_update",
]


POLICY_FIELDS = tuple(settings.RELEASE_POLICY_DEFAULTS)


def policy_get(*, study: Study) -> ReleasePolicy:
    policy, _ = ReleasePolicy.objects.get_or_create(
        study=study, defaults=copy.deepcopy(settings.RELEASE_POLICY_DEFAULTS)
    )
    return policy


def policy_as_dict(policy: ReleasePolicy) -> dict[str, Any]:
    return {field: getattr(policy, field) for field in POLICY_FIELDS}


def metric_margins_checked(margins: Any) -> dict[str, float]:
    """`{metric name: margin}` with each margin a finite number >= 0, else
    DomainValidationError naming the metric."""
    if not isinstance(margins, dict):
        raise DomainValidationError(
            "forgetting_metric_margins must be an object {metric name: margin}",
            errors={"forgetting_metric_margins": ["not an object"]},
        )
    checked = {}
    for name, margin in margins.items():
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise DomainValidationError(
                f"forgetting_metric_margins: {name!r} is not a metric name",
                errors={"forgetting_metric_margins": ["bad metric name"]},
            )
        if (
            isinstance(margin, bool)
            or not isinstance(margin, int | float)
            or not 0 <= margin < math.inf
        ):
            raise DomainValidationError(
                f"forgetting_metric_margins[{name!r}] must be a finite number >= 0, got {margin!r}",
                errors={"forgetting_metric_margins": [f"{name}: not a finite number >= 0"]},
            )
        checked[name.strip()] = float(margin)
    return checked


@transaction.atomic
def policy_update(*, study: Study, actor: AbstractBaseUser, **fields: Any) -> ReleasePolicy:
    """Admins edit a study's release policy; audited. Raises DomainPermissionError,
    DomainValidationError."""
    if not roles.is_admin(actor):
        raise DomainPermissionError("only an admin may edit a release policy")
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise DomainValidationError(f"unknown policy field(s): {', '.join(sorted(unknown))}")
    if "win_rate_interval" in fields and fields["win_rate_interval"] not in ("item", "panel"):
        raise DomainValidationError(
            "win_rate_interval must be item or panel", errors={"win_rate_interval": ["invalid"]}
        )
    if "required_approvals" in fields and fields["required_approvals"] not in (1, 2, 3):
        raise DomainValidationError(
            "required_approvals must be 1, 2 or 3", errors={"required_approvals": ["1-3"]}
        )
    if "forgetting_metric_margins" in fields:
        fields["forgetting_metric_margins"] = metric_margins_checked(
            fields["forgetting_metric_margins"]
        )
    policy = policy_get(study=study)
    before = policy_as_dict(policy)
    for key, value in fields.items():
        setattr(policy, key, value)
    policy.save()
    annotation_services.audit_record(
        entity="policy",
        entity_id=study.slug,
        action="updated",
        actor=actor,
        study=study,
        details={"before": before, "after": policy_as_dict(policy)},
    )
    annotation_services.evidence_changed_notify(study.pk)
    return policy
