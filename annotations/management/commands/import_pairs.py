from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotations import selectors, services
from annotations.importers import UNMATCHED_CHOICES
from annotations.management.commands._common import blinding_line, call
from annotations.models import StudyStatus


class Command(BaseCommand):
    help = "Imports pairs into a study, all or nothing: any bad line aborts with file:line: reason."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=["jsonl", "alpaca"], default="jsonl")
        parser.add_argument("--tuned", type=Path, help="alpaca format: the tuned model's file")
        parser.add_argument(
            "--unmatched",
            choices=UNMATCHED_CHOICES,
            default="error",
            help="alpaca format: an instruction found in only one file fails the import "
            "(error, the default) or is left out and reported (skip)",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        study = call(self.stderr, selectors.study_get, slug=options["slug"])
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if options["format"] == "alpaca":
            tuned: Path | None = options["tuned"]
            if tuned is None or not tuned.is_file():
                raise CommandError(
                    "--format alpaca needs --tuned FILE2 (the tuned model's outputs)"
                )
        else:
            tuned = None
        parsed = call(
            self.stderr,
            services.upload_parse,
            file_format=options["format"],
            data=path.read_bytes(),
            file_name=str(path),
            tuned_data=tuned.read_bytes() if tuned is not None else None,
            tuned_name=str(tuned) if tuned is not None else "",
            unmatched=options["unmatched"],
        )
        bar = tqdm(
            total=len(parsed.items),
            unit="item",
            file=self.stderr._out,
            disable=options["no_progress"] or len(parsed.items) < 1_000,
        )
        try:
            summary = call(
                self.stderr,
                services.items_import,
                study=study,
                parsed=parsed,
                source=str(path),
                progress=bar.update,
            )
        finally:
            bar.close()
        self.stdout.write(self.style.SUCCESS(f"imported {summary.items} items into {study.slug}"))
        for name, skipped in summary.skipped.items():
            self.stdout.write(f"skipped {skipped['count']} unmatched row(s) of {name}, first:")
            for row in skipped["first"]:
                self.stdout.write(f"  {row}")
        if summary.blinding is not None:
            self.stdout.write(blinding_line(summary.blinding))
            if summary.blinding["at_risk"] and study.status == StudyStatus.OPEN:
                self.stderr.write(
                    f"warning: {study.slug} is open, so raters see these tells now; list the "
                    "fixed openers in display_strip_prefixes or close the study "
                    f"(manage.py blinding_audit {study.slug} shows them)"
                )
