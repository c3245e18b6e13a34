"""Writes: the blinding audit of a study (run, stored on the study, audited) and the check that
stands before a study opens: what raters will see must not tell base from tuned on surface
features alone unless a researcher acknowledges the risk with a reason."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotations import selectors
from annotations.blinding_audit import PREFIX_FIX, blinding_audit
from annotations.errors import ConflictError, DomainValidationError
from annotations.models import Study
from annotations.services.studies import audit_record

__all__ = [
    "blinding_audit_run",
    "blinding_open_check",
    "blinding_risk_message",
]


@transaction.atomic
def blinding_audit_run(*, study: Study) -> dict[str, Any]:
    """Audits the study's outputs (raw and as displayed with its prefix list) and stores the
    result on the study (`Study.blinding_audit`, `blinding_audit_at`): a computed summary of
    the evidence, not a decision, so it leaves no audit event (acknowledging a risk does).
    Returns the stored JSON (`annotations.blinding_audit.BlindingAudit.as_dict` plus
    `computed_at`, `items_in_study`, `sampled`)."""
    locked = Study.objects.select_for_update().get(pk=study.pk)
    read = selectors.study_output_pairs(study=locked)
    audit = blinding_audit(read.pairs, strip_prefixes=tuple(locked.display_strip_prefixes or ()))
    now = timezone.now()
    result = {
        **audit.as_dict(),
        "items_in_study": read.items_in_study,
        "sampled": read.sampled,
        "computed_at": now.isoformat(),
    }
    locked.blinding_audit = result
    locked.blinding_audit_at = now
    locked.save(update_fields=["blinding_audit", "blinding_audit_at", "updated_at"])
    study.blinding_audit, study.blinding_audit_at = result, now
    return result


def _percent(rate: float) -> str:
    return f"{100 * rate:.0f}%"


def blinding_risk_message(*, slug: str, audit: dict[str, Any]) -> str:
    """Why opening is refused: the AUC, the tells raters would see, and how to fix each."""
    tells = audit.get("tells_displayed") or []
    named = ", ".join(
        f"{t['feature']} (base {_percent(t['base_rate'])}, tuned {_percent(t['tuned_rate'])})"
        for t in tells[:5]
    )
    prefixes = [t["prefix"] for t in tells if t.get("fix") == PREFIX_FIX and t.get("prefix")]
    fixes = []
    if prefixes:
        fixes.append(
            "add the fixed opener(s) "
            + ", ".join(repr(p) for p in prefixes)
            + " to the study's display_strip_prefixes"
        )
    if any(t.get("fix") is None for t in tells):
        fixes.append("clean the outputs of tells no display normalisation removes and re-import")
    fix = "; or ".join(fixes) or "clean the outputs and re-import"
    return (
        f"opening {slug!r} would unblind raters: surface features alone tell base from tuned "
        f"in what raters see (AUC {audit['auc_displayed_without_length']:.2f} without length, "
        f"over {audit['risk_threshold']:.2f}). Tells: {named or 'none above the threshold'}. "
        f"Fix: {fix}; or open with acknowledge_blinding_risk and a reason."
    )


def blinding_open_check(
    *,
    study: Study,
    acknowledge_blinding_risk: bool = False,
    reason: str = "",
    actor: AbstractBaseUser | None = None,
) -> dict[str, Any] | None:
    """Runs a fresh audit before `study` opens (its outputs or prefix list may have changed
    since the last one). Returns None when raters could not tell the sides apart beyond the
    threshold; the acknowledgement details (also recorded as an audit event) when they could
    and the caller acknowledged it with a reason.

    Raises ConflictError naming the tells and the fix when the risk is not acknowledged,
    DomainValidationError when it is acknowledged without a reason."""
    if acknowledge_blinding_risk and not reason.strip():
        raise DomainValidationError(
            "acknowledge_blinding_risk needs a reason", errors={"reason": ["required"]}
        )
    audit = blinding_audit_run(study=study)
    if not audit["at_risk"]:
        return None
    if not acknowledge_blinding_risk:
        raise ConflictError(
            blinding_risk_message(slug=study.slug, audit=audit),
            errors={
                "blinding": {
                    "auc_displayed_without_length": audit["auc_displayed_without_length"],
                    "tells": audit["tells_displayed"],
                    "normalisations": audit["normalisations"],
                }
            },
        )
    details = {
        "reason": reason.strip(),
        "auc_displayed_without_length": audit["auc_displayed_without_length"],
        "auc_displayed": audit["auc_displayed"],
        "tells": audit["tells_displayed"],
        "strip_prefixes": audit["strip_prefixes"],
    }
    audit_record(
        entity="study",
        entity_id=study.slug,
        action="blinding_risk_acknowledged",
        actor=actor,
        study=study,
        details=details,
    )
    return details
