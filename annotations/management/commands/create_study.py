from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotations import roles, services
from annotations.management.commands._common import call
from annotations.models import QueueOrder, StudyStatus, TaskType


class Command(BaseCommand):
    help = "Creates a study."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--task", required=True, choices=TaskType.values)
        parser.add_argument("--overlap", type=int, default=3, help="votes wanted per item (k)")
        parser.add_argument("--instructions", default="")
        parser.add_argument("--base-model", default="")
        parser.add_argument("--tuned-model", default="")
        parser.add_argument("--gold-rate", type=float, default=0.0)
        parser.add_argument(
            "--min-time-ms",
            type=int,
            default=None,
            help="flag judgments faster than this; default from the pair length; 0: never",
        )
        parser.add_argument("--queue-order", choices=QueueOrder.values, default=QueueOrder.RANDOM)
        parser.add_argument("--status", choices=StudyStatus.values, default=StudyStatus.DRAFT)
        parser.add_argument(
            "--strip-prefix",
            action="append",
            default=[],
            dest="strip_prefixes",
            metavar="PREFIX",
            help="a fixed opener (e.g. 'Sure!') to strip from both outputs before raters see "
            "them; repeat for more",
        )
        parser.add_argument(
            "--owner",
            help="the researcher who owns the study (without one, only admins may change it)",
        )

    def handle(self, *args, **options) -> None:
        owner = None
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None or not roles.is_researcher(owner):
                raise CommandError(f"no researcher {options['owner']!r}")
        study = call(
            self.stderr,
            services.study_create,
            slug=options["slug"],
            name=options["name"],
            task_type=options["task"],
            overlap=options["overlap"],
            instructions=options["instructions"],
            base_model=options["base_model"],
            tuned_model=options["tuned_model"],
            gold_rate=options["gold_rate"],
            min_time_ms=options["min_time_ms"],
            queue_order=options["queue_order"],
            status=options["status"],
            display_strip_prefixes=options["strip_prefixes"],
            created_by=owner,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"created study {study.slug}: {study.status} ({StudyStatus(study.status).label})"
            )
        )
        for line in next_steps(study.slug, study.status):
            self.stdout.write(f"  {line}")
        # Planned by scoring when the study was created (`study_created`), read back here.
        planning = getattr(type(study).objects.get(pk=study.pk), "planning", None)
        if planning is not None:
            self.stdout.write(f"planning: {planning.summary}")


def next_steps(slug: str, status: str) -> list[str]:
    """What to do with a study just created, by its state: a draft serves no pairs until it
    opens, and opening runs the blinding audit on its items."""
    page = f"study page: /studies/{slug}/"
    if status == StudyStatus.DRAFT:
        return [
            "raters are served nothing until it opens; import its pairs first:",
            f"  manage.py import_pairs {slug} FILE",
            f"then open it (the blinding audit runs first): manage.py transition_study {slug} "
            f"open, or the {page}",
        ]
    if status == StudyStatus.OPEN:
        return [
            f"raters assigned to it (manage.py assign_raters {slug} NAME ...) are served its "
            "pairs at /rate/",
            page,
        ]
    return [f"move it on with manage.py transition_study {slug} STATE, or the {page}"]
