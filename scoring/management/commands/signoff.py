from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotations.management.commands._common import call
from scoring.release import decision_get, run_get, signoff_record


class Command(BaseCommand):
    help = "Approves or rejects a run's evidence as a release owner (prints the criteria first)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_id")
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--approve", action="store_true")
        group.add_argument("--reject", action="store_true")
        parser.add_argument("--comment", required=True)
        parser.add_argument(
            "--as", dest="username", required=True, help="the release owner signing"
        )

    def handle(self, *args, **options) -> None:
        actor = get_user_model().objects.filter(username=options["username"]).first()
        if actor is None:
            raise CommandError(f"no user {options['username']!r}")
        run = call(self.stderr, run_get, run_id=options["run_id"])
        decision = decision_get(study=run.study)
        for c in decision["criteria"]:
            mark = "PASS" if c["passed"] else "FAIL"
            self.stdout.write(
                f"  {mark:<4} {c['name']}{'' if c['required'] else ' (informational)'}: "
                f"{c['evidence']}"
            )
        signoff = call(
            self.stderr,
            signoff_record,
            study=run.study,
            actor=actor,
            decision="approve" if options["approve"] else "reject",
            comment=options["comment"],
        )
        run.study.refresh_from_db()
        self.stdout.write(
            self.style.SUCCESS(
                f"{signoff.decision} recorded (report {signoff.report_sha256[:12]}...); "
                f"study is {run.study.status}"
            )
        )
