from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from annotations import selectors
from annotations.exporting import write_rows
from annotations.management.commands._common import call, output_to


class Command(BaseCommand):
    help = "Writes one row per judgment (CSV or JSONL), streamed in constant memory."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
        parser.add_argument("--out", type=Path, help="file to write (default: standard output)")

    def handle(self, *args, **options) -> None:
        study = call(self.stderr, selectors.study_get, slug=options["slug"])
        out_path: Path | None = options["out"]
        with output_to(self, out_path) as handle:
            count = write_rows(
                handle,
                selectors.judgment_export_rows(study=study),
                selectors.JUDGMENT_EXPORT_FIELDS,
                options["format"],
            )
        if out_path:
            self.stderr.write(f"wrote {count} judgments to {out_path}")
