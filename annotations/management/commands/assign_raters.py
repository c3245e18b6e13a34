from __future__ import annotations

from django.core.management.base import BaseCommand

from annotations import selectors, services
from annotations.management.commands._common import call


class Command(BaseCommand):
    help = "Adds raters to a study (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("usernames", nargs="+")

    def handle(self, *args, **options) -> None:
        study = call(self.stderr, selectors.study_get, slug=options["slug"])
        memberships = call(
            self.stderr, services.raters_assign, study=study, usernames=options["usernames"]
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(memberships)} rater(s) on {study.slug}: {', '.join(options['usernames'])}"
            )
        )
