from __future__ import annotations

import json

from django.core.management.base import BaseCommand
from django.db import transaction

from annotations import services
from annotations.demo_data import DEMO_STUDY, DEMO_USERS, demo_records
from annotations.importers import parse_jsonl
from annotations.management.commands._common import domain_errors_as_command_errors
from annotations.models import Study, StudyStatus


class Command(BaseCommand):
    help = "Loads the demo study and demo accounts (idempotent) and prints the logins."

    def handle(self, *args, **options) -> None:
        with domain_errors_as_command_errors(self.stderr), transaction.atomic():
            users = {
                username: services.user_create(
                    username=username, password=password, role=role, exist_ok=True
                )
                for username, role, password in DEMO_USERS
            }
            # The demo researcher owns the demo study, so they may change it.
            owner = next((users[u] for u, role, _ in DEMO_USERS if role == "researcher"), None)
            study = Study.objects.filter(slug=DEMO_STUDY["slug"]).first()
            if study is None:
                study = services.study_create(
                    **DEMO_STUDY, status=StudyStatus.OPEN, created_by=owner
                )
                data = "\n".join(json.dumps(r) for r in demo_records()).encode()
                parsed = parse_jsonl(data, file="demo")
                services.items_import(study=study, parsed=parsed, source="demo")
            services.raters_assign(
                study=study, usernames=[u for u, role, _ in DEMO_USERS if role == "rater"]
            )
        self.stdout.write(
            self.style.SUCCESS(f"demo study {study.slug} ready ({study.items.count()} items)")
        )
        self.stdout.write("Demo logins (http://127.0.0.1:8000/):")
        for username, role, password in DEMO_USERS:
            self.stdout.write(f"  {role:<10} {username:<10} password: {password}")
