"""Writes: who rates a study. Assigning existing raters, invite links (one person each, one
time, expiring, revocable), crowd links (Prolific / MTurk style: an open link, one account per
participant id, a cap of pairs each, a completion code) and removing a rater.

Tokens: an invite's token is shown once, when it is made; only its SHA-256 is stored, so a
database dump holds no usable link. A crowd link's token is stored as is: the link is posted on
the crowd platform and copied again later, and it only ever admits crowd participants with a
capped number of pairs (deactivating it closes it).

Every change of membership, invite or crowd link leaves an `AuditEvent`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations import roles
from annotations.errors import (
    ConflictError,
    DomainPermissionError,
    DomainValidationError,
    NotFoundError,
    RaterRemovedError,
)
from annotations.models import (
    Assignment,
    AssignmentState,
    CrowdLink,
    Judgment,
    Study,
    StudyInvite,
    StudyRater,
    StudyStatus,
)
from annotations.selectors import invite_state
from annotations.services.studies import (
    ORDER_MODULUS,
    audit_record,
    roles_ensure,
    user_create,
)

__all__ = [
    "COMPLETION_CODE_PATTERN",
    "CROWD_ITEMS_MAX",
    "INVITE_DAYS_DEFAULT",
    "INVITE_DAYS_MAX",
    "INVITE_NAMES_MAX",
    "PARAM_NAME_PATTERN",
    "PARTICIPANT_ID_PATTERN",
    "CrowdJoined",
    "InviteAccepted",
    "NewInvite",
    "RosterOutcome",
    "crowd_link_create",
    "crowd_link_deactivate",
    "crowd_participant_join",
    "invite_accept",
    "invite_create",
    "invite_revoke",
    "invite_token_hash",
    "participant_id_check",
    "rater_remove",
    "raters_assign",
    "raters_invite",
]

User = get_user_model()

INVITE_DAYS_DEFAULT = 7
INVITE_DAYS_MAX = 90
# One request of names (one invite link each) at most; a bigger panel is several requests.
INVITE_NAMES_MAX = 500
CROWD_ITEMS_MAX = 10_000
CROWD_PARTICIPANTS_MAX = 1_000_000

# A participant id arrives in a URL from a crowd platform (Prolific: 24 hex characters; MTurk:
# about 14 capitals and digits). Anything else is refused before it is stored or exported: it
# starts with a letter or digit (so a spreadsheet never reads it as a formula), then letters,
# digits, '_', '-' or '.', 64 characters at most.
PARTICIPANT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PARAM_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
COMPLETION_CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _random_order() -> dict[str, int]:
    """The rater's own item order (an affine permutation of item ids, `queue_sql`)."""
    return {
        "order_multiplier": 1 + secrets.randbelow(ORDER_MODULUS - 1),
        "order_offset": secrets.randbelow(ORDER_MODULUS),
    }


def _membership_add(
    *,
    study: Study,
    rater: AbstractBaseUser,
    actor: AbstractBaseUser | None,
    via: str,
    details: dict | None = None,
) -> tuple[StudyRater, bool]:
    """Puts `rater` in `study` (again, if they were removed); audits a change. Returns the
    membership and whether it changed."""
    membership, created = StudyRater.objects.get_or_create(
        study=study, rater=rater, defaults=_random_order()
    )
    if not created and membership.removed_at is None:
        return membership, False
    if not created:
        membership.removed_at = None
        membership.save(update_fields=["removed_at"])
    audit_record(
        entity="rater",
        entity_id=rater.get_username(),
        action="added" if created else "readded",
        actor=actor,
        study=study,
        details={"via": via, **(details or {})},
    )
    return membership, True


# --- existing raters ------------------------------------------------------------------------


@transaction.atomic
def raters_assign(
    *, study: Study, usernames: Sequence[str], actor: AbstractBaseUser | None = None
) -> list[StudyRater]:
    """Adds existing raters to a study (idempotent; a removed rater comes back). Raises
    DomainValidationError for unknown users or users without the rater role (nothing
    written)."""
    users = {
        u.username: u
        for u in User.objects.filter(username__in=usernames).prefetch_related("groups")
    }
    missing = [name for name in usernames if name not in users]
    if missing:
        raise DomainValidationError(f"unknown user(s): {', '.join(missing)}")
    not_raters = [name for name, user in users.items() if not roles.is_rater(user)]
    if not_raters:
        raise DomainValidationError(
            f"user(s) without the rater role: {', '.join(sorted(not_raters))}"
        )
    return [
        _membership_add(study=study, rater=users[name], actor=actor, via="assigned")[0]
        for name in usernames
    ]


@transaction.atomic
def rater_remove(
    *, study: Study, username: str, actor: AbstractBaseUser | None = None
) -> StudyRater:
    """Takes a rater off a study: no more pairs, their open leases return to the pool at once
    (expired now, so other raters are served those items), their judgments stay, in the report
    and the exports. Audited with the counts. Raises NotFoundError (not a rater of the study),
    ConflictError (removed already)."""
    found = (
        StudyRater.objects.select_related("rater")
        .filter(study=study, rater__username=username)
        .first()
    )
    if found is None:
        raise NotFoundError(f"{username!r} is not a rater of {study.slug!r}")
    now = timezone.now()
    # Expired, not deleted: the rater's open page then hears "removed" for that pair rather
    # than "no such pair", and an expired lease holds no place in the queue. Assignment rows
    # before the membership row: the order a judgment locks them in.
    released = Assignment.objects.filter(
        item__study=study,
        rater=found.rater,
        state=AssignmentState.LEASED,
        leased_until__gt=now,
    ).update(leased_until=now, updated_at=now)
    membership = StudyRater.objects.select_for_update().select_related("rater").get(pk=found.pk)
    if membership.removed_at is not None:
        raise ConflictError(f"{username!r} was removed from {study.slug!r} already")
    membership.removed_at = now
    membership.save(update_fields=["removed_at"])
    judgments = Judgment.objects.filter(item__study=study, rater=membership.rater).count()
    audit_record(
        entity="rater",
        entity_id=username,
        action="removed",
        actor=actor,
        study=study,
        details={
            "leases_released": released,
            "judgments_kept": judgments,
            **({"participant_id": membership.participant_id} if membership.crowd_link_id else {}),
        },
    )
    return membership


# --- invite links ---------------------------------------------------------------------------


def invite_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewInvite:
    """An invite just made, with its token: the only time the token exists in clear."""

    invite: StudyInvite
    token: str


def _days_check(days: int) -> int:
    if not 1 <= days <= INVITE_DAYS_MAX:
        raise DomainValidationError(
            f"an invite lasts 1 to {INVITE_DAYS_MAX} days", errors={"days": ["out of range"]}
        )
    return days


def _study_open_to_raters_check(study: Study) -> None:
    if study.archived_at is not None:
        raise ConflictError("this study is archived and takes no new raters")


def _invite_new(
    *, study: Study, actor: AbstractBaseUser | None, username: str, days: int
) -> NewInvite:
    token = secrets.token_urlsafe(32)
    invite = StudyInvite.objects.create(
        study=study,
        token_hash=invite_token_hash(token),
        username=username,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        expires_at=timezone.now() + timedelta(days=days),
    )
    audit_record(
        entity="invite",
        entity_id=invite.pk,
        action="created",
        actor=actor,
        study=study,
        after="pending",
        details={"username": username, "expires_at": invite.expires_at.isoformat()},
    )
    return NewInvite(invite=invite, token=token)


@transaction.atomic
def invite_create(
    *,
    study: Study,
    actor: AbstractBaseUser | None,
    username: str = "",
    days: int = INVITE_DAYS_DEFAULT,
) -> NewInvite:
    """One invite link; the person who opens it picks their username (or takes `username`).
    Raises DomainValidationError (days out of range, a bad username), ConflictError."""
    _study_open_to_raters_check(study)
    _days_check(days)
    if username:
        _username_check(username, where="username")
    return _invite_new(study=study, actor=actor, username=username, days=days)


def _username_check(name: str, *, where: str) -> None:
    problem = None
    if len(name) > User._meta.get_field("username").max_length:
        problem = "longer than 150 characters"
    else:
        try:
            User.username_validator(name)
        except Exception:  # noqa: BLE001 - Django's ValidationError; its message is generic
            problem = "only letters, digits and @ . + - _ are allowed"
    if problem:
        raise DomainValidationError(f"{where}: {name!r}: {problem}", errors={where: [problem]})


@dataclass(frozen=True)
class RosterOutcome:
    """What a name of a bulk list became: a new invite link (`token`, shown once), an existing
    rater assigned now, or one who was in the study already."""

    username: str
    outcome: str  # "invited" | "assigned" | "already_in"
    token: str = ""
    invite: StudyInvite | None = None


@transaction.atomic
def raters_invite(
    *,
    study: Study,
    actor: AbstractBaseUser | None,
    lines: Sequence[str],
    days: int = INVITE_DAYS_DEFAULT,
) -> list[RosterOutcome]:
    """A list of usernames, one a line: an existing rater is assigned (or comes back), a name
    nobody has gets an invite link that creates that account. Blank lines and repeats are
    ignored. Either every line is done or none (DomainValidationError naming each bad line:
    a bad name, an account that is not a rater; or too many names)."""
    _study_open_to_raters_check(study)
    _days_check(days)
    names: list[tuple[int, str]] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        name = raw.strip()
        if name and name not in seen:
            seen.add(name)
            names.append((number, name))
    if not names:
        raise DomainValidationError("name at least one rater", errors={"usernames": ["empty"]})
    if len(names) > INVITE_NAMES_MAX:
        raise DomainValidationError(
            f"at most {INVITE_NAMES_MAX} names at once (got {len(names)})",
            errors={"usernames": ["too many"]},
        )
    users = {
        u.username: u
        for u in User.objects.filter(username__in=[n for _, n in names]).prefetch_related("groups")
    }
    problems = []
    for number, name in names:
        user = users.get(name)
        if user is not None:
            if not roles.is_rater(user):
                problems.append(f"line {number}: {name!r} is an account without the rater role")
            continue
        try:
            _username_check(name, where=f"line {number}")
        except DomainValidationError as exc:
            problems.append(exc.message)
    if problems:
        raise DomainValidationError(
            f"{len(problems)} line(s) refused, nothing done: " + "; ".join(problems),
            errors=problems,
        )
    outcomes = []
    for _, name in names:
        user = users.get(name)
        if user is None:
            new = _invite_new(study=study, actor=actor, username=name, days=days)
            outcomes.append(RosterOutcome(name, "invited", new.token, new.invite))
        else:
            _, changed = _membership_add(study=study, rater=user, actor=actor, via="assigned")
            outcomes.append(RosterOutcome(name, "assigned" if changed else "already_in"))
    return outcomes


@transaction.atomic
def invite_revoke(*, study: Study, invite_id: int, actor: AbstractBaseUser | None) -> StudyInvite:
    """Revokes a pending invite: its link stops working. Raises NotFoundError, ConflictError
    (accepted, expired or revoked already)."""
    invite = StudyInvite.objects.select_for_update().filter(study=study, pk=invite_id).first()
    if invite is None:
        raise NotFoundError(f"no invite {invite_id} in {study.slug!r}")
    state = invite_state(invite, timezone.now())
    if state != "pending":
        raise ConflictError(f"invite {invite_id} is {state}; only a pending invite is revoked")
    invite.revoked_at = timezone.now()
    invite.revoked_by = actor if actor is not None and actor.is_authenticated else None
    invite.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        entity="invite",
        entity_id=invite.pk,
        action="revoked",
        actor=actor,
        study=study,
        before="pending",
        after="revoked",
        details={"username": invite.username},
    )
    return invite


INVITE_CLOSED_MESSAGES = {
    "accepted": "this invite link was used already; each link lets one person in",
    "revoked": "this invite link was revoked by the study's researcher",
    "expired": "this invite link has expired; ask the researcher for a new one",
}


@dataclass(frozen=True)
class InviteAccepted:
    user: AbstractBaseUser
    study: Study
    account_created: bool


@transaction.atomic
def invite_accept(
    *,
    token: str,
    user: AbstractBaseUser | None = None,
    username: str = "",
    password: str = "",
) -> InviteAccepted:
    """Uses an invite link, once. With `user` (a rater signed in) it adds them to the study;
    without, it creates a rater account (the invite's username if it names one, else
    `username`) whose password must pass the password validators, and adds it.

    Raises NotFoundError (no such link), ConflictError (used, revoked, expired; the study is
    archived), DomainPermissionError (`user` is not a rater), DomainValidationError (a bad or
    taken username, a refused password). Nothing is written unless it succeeds."""
    invite = (
        StudyInvite.objects.select_for_update()
        .select_related("study")
        .filter(token_hash=invite_token_hash(token))
        .first()
    )
    if invite is None:
        raise NotFoundError("this invite link is not valid")
    now = timezone.now()
    state = invite_state(invite, now)
    if state != "pending":
        raise ConflictError(INVITE_CLOSED_MESSAGES[state], errors={"invite": [state]})
    study = invite.study
    _study_open_to_raters_check(study)
    created = user is None
    if user is not None:
        if not roles.is_rater(user):
            raise DomainPermissionError(
                "invites add raters; you are signed in with an account that is not a rater: "
                "sign out first to accept it with a new account"
            )
    else:
        name = invite.username or username.strip()
        if not name:
            raise DomainValidationError("choose a username", errors={"username": ["required"]})
        if User.objects.filter(username=name).exists():
            raise DomainValidationError(
                f"the username {name!r} is taken; choose another"
                if not invite.username
                else f"an account named {name!r} exists already; sign in with it to accept",
                errors={"username": ["taken"]},
            )
        user = user_create(username=name, password=password, role=roles.RATER)
    invite.accepted_by = user
    invite.accepted_at = now
    invite.save(update_fields=["accepted_by", "accepted_at"])
    audit_record(
        entity="invite",
        entity_id=invite.pk,
        action="accepted",
        actor=user,
        study=study,
        before="pending",
        after="accepted",
        details={"username": user.get_username(), "account_created": created},
    )
    _membership_add(
        study=study, rater=user, actor=user, via="invite", details={"invite": invite.pk}
    )
    return InviteAccepted(user=user, study=study, account_created=created)


# --- crowd links ----------------------------------------------------------------------------


def participant_id_check(value: str) -> str:
    """The participant id as given, when it is one (see PARTICIPANT_ID_PATTERN). Raises
    DomainValidationError."""
    if not PARTICIPANT_ID_PATTERN.fullmatch(value or ""):
        raise DomainValidationError(
            "the participant id must be 1 to 64 letters, digits, '_', '-' or '.', starting "
            "with a letter or digit",
            errors={"participant_id": ["invalid"]},
        )
    return value


@transaction.atomic
def crowd_link_create(
    *,
    study: Study,
    actor: AbstractBaseUser | None,
    items_per_participant: int,
    param_name: str = "PROLIFIC_PID",
    completion_code: str = "",
    label: str = "",
    max_participants: int | None = None,
) -> CrowdLink:
    """An open crowd link; without a completion code one is drawn; with `max_participants`,
    no new participant id joins once that many have. Raises DomainValidationError (a bad
    parameter name, cap, participant limit or code), ConflictError (archived)."""
    _study_open_to_raters_check(study)
    errors = {}
    if not PARAM_NAME_PATTERN.fullmatch(param_name or ""):
        errors["param_name"] = ["a letter or '_', then letters, digits or '_' (40 at most)"]
    if not 1 <= items_per_participant <= CROWD_ITEMS_MAX:
        errors["items_per_participant"] = [f"1 to {CROWD_ITEMS_MAX}"]
    if max_participants is not None and not 1 <= max_participants <= CROWD_PARTICIPANTS_MAX:
        errors["max_participants"] = [f"1 to {CROWD_PARTICIPANTS_MAX}, or none"]
    code = completion_code.strip() or secrets.token_hex(4).upper()
    if not COMPLETION_CODE_PATTERN.fullmatch(code):
        errors["completion_code"] = ["1 to 64 letters, digits, '_' or '-'"]
    if len(label) > 100:
        errors["label"] = ["100 characters at most"]
    if errors:
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        raise DomainValidationError(f"crowd link refused: {summary}", errors=errors)
    link = CrowdLink.objects.create(
        study=study,
        token=secrets.token_urlsafe(24),
        label=label.strip(),
        param_name=param_name,
        items_per_participant=items_per_participant,
        max_participants=max_participants,
        completion_code=code,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    audit_record(
        entity="crowd_link",
        entity_id=link.pk,
        action="created",
        actor=actor,
        study=study,
        after="active",
        details={
            "label": link.label,
            "param_name": param_name,
            "items_per_participant": items_per_participant,
            "max_participants": max_participants,
        },
    )
    return link


@transaction.atomic
def crowd_link_deactivate(
    *, study: Study, link_id: int, actor: AbstractBaseUser | None
) -> CrowdLink:
    """Closes a crowd link: nobody new joins or resumes through it. Participants already in
    keep their membership (remove them one by one to stop them). Raises NotFoundError,
    ConflictError (inactive already)."""
    link = CrowdLink.objects.select_for_update().filter(study=study, pk=link_id).first()
    if link is None:
        raise NotFoundError(f"no crowd link {link_id} in {study.slug!r}")
    if link.deactivated_at is not None:
        raise ConflictError(f"crowd link {link_id} is inactive already")
    link.deactivated_at = timezone.now()
    link.save(update_fields=["deactivated_at"])
    audit_record(
        entity="crowd_link",
        entity_id=link.pk,
        action="deactivated",
        actor=actor,
        study=study,
        before="active",
        after="inactive",
    )
    return link


@dataclass(frozen=True)
class CrowdJoined:
    user: AbstractBaseUser
    study: Study
    membership: StudyRater
    created: bool


CROWD_USERNAME_PREFIX = "crowd-"


@transaction.atomic
def crowd_participant_join(*, token: str, participant_id: str) -> CrowdJoined:
    """A crowd participant arrives through a link: the account of (link, participant id) if
    it exists (resume), else a new rater account with no password, in the study, its
    membership holding the participant id. The account name is random (it says nothing about
    the participant); the page signs the participant in as that account.

    Raises NotFoundError (no such link), ConflictError (the link is inactive; the study is
    archived, or not collecting, or the link full, when a new participant arrives),
    DomainValidationError (a bad participant id), RaterRemovedError (the participant was
    removed from the study). The link's row lock makes the participant count exact under
    concurrent arrivals."""
    link = CrowdLink.objects.select_for_update().select_related("study").filter(token=token).first()
    if link is None:
        raise NotFoundError("this study link is not valid")
    if link.deactivated_at is not None:
        raise ConflictError("this study link is closed; it takes no participants any more")
    participant_id_check(participant_id)
    study = link.study
    _study_open_to_raters_check(study)
    membership = (
        StudyRater.objects.select_related("rater")
        .filter(crowd_link=link, participant_id=participant_id)
        .first()
    )
    if membership is not None:
        if membership.removed_at is not None:
            raise RaterRemovedError()
        return CrowdJoined(membership.rater, study, membership, created=False)
    if study.status != StudyStatus.OPEN:
        raise ConflictError("this study is not collecting judgments right now; try again later")
    if (
        link.max_participants is not None
        and StudyRater.objects.filter(crowd_link=link).count() >= link.max_participants
    ):
        raise ConflictError(
            "this study link has all the participants it takes; it takes no new ones",
            errors={"crowd_link": ["full"]},
        )
    roles_ensure()
    user = None
    for _attempt in range(5):
        try:
            with transaction.atomic():
                user = User(username=CROWD_USERNAME_PREFIX + secrets.token_hex(6))
                user.set_unusable_password()
                user.save()
            break
        except IntegrityError:  # the drawn name exists (vanishingly rare): draw again
            user = None
    if user is None:
        raise ConflictError("could not create an account; try again")
    user.groups.add(Group.objects.get(name=roles.RATER))
    membership = StudyRater.objects.create(
        study=study, rater=user, crowd_link=link, participant_id=participant_id, **_random_order()
    )
    audit_record(
        entity="rater",
        entity_id=user.get_username(),
        action="added",
        actor=None,
        study=study,
        details={"via": "crowd_link", "crowd_link": link.pk, "participant_id": participant_id},
    )
    return CrowdJoined(user, study, membership, created=True)
