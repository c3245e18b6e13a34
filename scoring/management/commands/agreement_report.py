from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from annotations import selectors as annotation_selectors
from annotations.management.commands._common import call
from scoring.exports import write_export
from scoring.models import ExportKind

KINDS = {
    "json": ExportKind.REPORT_JSON,
    "csv": ExportKind.REPORT_CSV,
    "html": ExportKind.REPORT_HTML,
    "items-csv": ExportKind.ITEMS_CSV,
    "items-jsonl": ExportKind.ITEMS_JSONL,
    "dpo": ExportKind.DPO_JSONL,
}


class Command(BaseCommand):
    help = "Writes the research report (agreement, win rate, raters, reconciliation) of a study."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--format", choices=sorted(KINDS), default="json")
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--exclude-flagged-raters", action="store_true")
        parser.add_argument(
            "--include-judge",
            action="store_true",
            help="dpo: judge fills items without a human majority",
        )

    def handle(self, *args, **options) -> None:
        study = call(self.stderr, annotation_selectors.study_get, slug=options["slug"])
        rows = write_export(
            study=study,
            kind=KINDS[options["format"]],
            options={
                "exclude_flagged_raters": options["exclude_flagged_raters"],
                "include_judge": options["include_judge"],
            },
            path=options["out"],
        )
        self.stdout.write(self.style.SUCCESS(f"wrote {options['out']} ({rows} row(s))"))
