from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from annotations import selectors as annotation_selectors
from annotations.exporting import write_rows
from annotations.management.commands._common import call, output_to
from scoring import selectors


class Command(BaseCommand):
    help = "Writes one row per item, system and metric (plus the judge's preference probability)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
        parser.add_argument("--out", type=Path)

    def handle(self, *args, **options) -> None:
        study = call(self.stderr, annotation_selectors.study_get, slug=options["slug"])
        out_path: Path | None = options["out"]
        with output_to(self, out_path) as handle:
            count = write_rows(
                handle,
                selectors.score_export_rows(study=study),
                selectors.SCORE_EXPORT_FIELDS,
                options["format"],
            )
        if out_path:
            self.stderr.write(f"wrote {count} rows to {out_path}")
