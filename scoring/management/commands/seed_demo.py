"""The demo: its accounts (one per role), a study open for rating, and a training run rated and
ready for the release owner's sign-off. Idempotent: a second run creates nothing new (a demo
account whose printed login no longer works gets its password and role back)."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand
from django.db import transaction

from annotations import roles, services
from annotations.demo_data import DEMO_STUDY, DEMO_USERS, demo_records
from annotations.importers import parse_jsonl
from annotations.management.commands._common import domain_errors_as_command_errors
from annotations.models import Study, StudyStatus
from scoring.demo.run import demo_run_seed
from scoring.release import decision_get

SERVER = "http://127.0.0.1:8000"


class Command(BaseCommand):
    help = (
        "Loads the demo (idempotent): an account per role, a study open for rating and a "
        "training run ready for sign-off; prints the logins."
    )

    def handle(self, *args, **options) -> None:
        with domain_errors_as_command_errors(self.stderr):
            with transaction.atomic():
                users = {
                    username: demo_user(username, role, password)
                    for username, role, password in DEMO_USERS
                }
                study = demo_study_seed(users)
            by_role = {role: users[username] for username, role, _ in DEMO_USERS}
            run, _ = demo_run_seed(
                researcher=by_role[roles.RESEARCHER],
                admin=by_role[roles.ADMIN],
                raters=[users[u] for u, role, _ in DEMO_USERS if role == roles.RATER],
            )
        self.stdout.write(
            self.style.SUCCESS(f"demo study {study.slug} ready ({study.items.count()} items)")
        )
        run.study.refresh_from_db()
        decision = decision_get(study=run.study)
        votes = next(c for c in decision["criteria"] if c["name"] == "human_votes")["evidence"]
        self.stdout.write(
            self.style.SUCCESS(
                f"demo run {run.run_id}: {StudyStatus(run.study.status).label.lower()}; "
                f"{votes}; verdict {decision['verdict']}; "
                f"the release owner decides at {SERVER}/runs/{run.run_id}/signoff/"
            )
        )
        self.stdout.write(f"Demo logins ({SERVER}/):")
        for username, role, password in DEMO_USERS:
            self.stdout.write(f"  {role:<13} {username:<12} password: {password}")


def demo_user(username: str, role: str, password: str) -> AbstractBaseUser:
    """The demo account, made (or repaired) so the printed login works. One that works already
    is left alone: setting its password again would sign its open sessions out."""
    user = get_user_model().objects.filter(username=username).first()
    if user is not None and role in roles.role_names(user) and user.check_password(password):
        return user
    return services.user_create(username=username, password=password, role=role, exist_ok=True)


def demo_study_seed(users: dict) -> Study:
    """The demo study, open for rating by the demo raters, owned by the demo researcher."""
    owner = next((users[u] for u, role, _ in DEMO_USERS if role == roles.RESEARCHER), None)
    study = Study.objects.filter(slug=DEMO_STUDY["slug"]).first()
    if study is None:
        study = services.study_create(**DEMO_STUDY, status=StudyStatus.OPEN, created_by=owner)
        data = "\n".join(json.dumps(r) for r in demo_records()).encode()
        parsed = parse_jsonl(data, file="demo")
        services.items_import(study=study, parsed=parsed, source="demo")
    services.raters_assign(
        study=study, usernames=[u for u, role, _ in DEMO_USERS if role == roles.RATER]
    )
    return study
