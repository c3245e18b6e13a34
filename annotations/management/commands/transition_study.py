"""Moves a study along its states, as the study page and `POST .../transition/` do."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotations import selectors, services
from annotations.management.commands._common import call
from annotations.models import SIGN_OFF_STATES, STUDY_TRANSITIONS, StudyStatus


class Command(BaseCommand):
    help = (
        "Moves a study to another state (e.g. draft -> open); opening runs the blinding audit "
        "first and is refused while raters could tell the sides apart, unless acknowledged."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        # Entering signed_off or rejected is the sign-off's job (`signoff`), never a move.
        parser.add_argument(
            "status",
            choices=[s for s in StudyStatus.values if s not in SIGN_OFF_STATES],
        )
        parser.add_argument("--reason", default="", help="recorded in the audit log")
        parser.add_argument(
            "--acknowledge-blinding-risk",
            action="store_true",
            help="open although the blinding audit finds tells (needs --reason)",
        )
        parser.add_argument("--as", dest="username", help="the user making the move (audit log)")

    def handle(self, *args, **options) -> None:
        actor = None
        if options["username"]:
            actor = get_user_model().objects.filter(username=options["username"]).first()
            if actor is None:
                raise CommandError(f"no user {options['username']!r}")
        study = call(self.stderr, selectors.study_get, slug=options["slug"])
        before = study.status
        study = call(
            self.stderr,
            services.study_update,
            study=study,
            actor=actor,
            status=options["status"],
            reason=options["reason"],
            acknowledge_blinding_risk=options["acknowledge_blinding_risk"],
        )
        label = StudyStatus(study.status).label
        self.stdout.write(
            self.style.SUCCESS(f"study {study.slug}: {before} -> {study.status} ({label})")
        )
        onward = sorted(STUDY_TRANSITIONS.get(study.status, frozenset()) - SIGN_OFF_STATES)
        if onward:
            self.stdout.write(f"  next states: {', '.join(onward)}")
