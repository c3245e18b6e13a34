from __future__ import annotations

from django.core.management.base import BaseCommand

from annotations import services
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

    def handle(self, *args, **options) -> None:
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
        )
        self.stdout.write(self.style.SUCCESS(f"created study {study.slug} ({study.status})"))
