"""Runs a study's blinding audit, stores it on the study and prints it (text or JSON)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from annotations import selectors, services
from annotations.management.commands._common import blinding_line, call


def _rate(value: float) -> str:
    return f"{100 * value:5.1f}%"


class Command(BaseCommand):
    help = (
        "Audits how well surface features alone (whitespace, first word, markdown, script, "
        "length) tell base from tuned outputs, raw and as raters see them."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args, **options) -> None:
        study = call(self.stderr, selectors.study_get, slug=options["slug"])
        audit = call(self.stderr, services.blinding_audit_run, study=study)
        if options["format"] == "json":
            self.stdout.write(json.dumps({"study": study.slug, **audit}, indent=2))
            return
        self.stdout.write(
            f"{study.slug}: {audit['n_items']} items, {audit['n_outputs']} outputs"
            + (f" (a sample of {audit['items_in_study']} items)" if audit["sampled"] else "")
        )
        self.stdout.write(blinding_line(audit))
        for title, key in (("raw outputs", "tells"), ("as displayed", "tells_displayed")):
            self.stdout.write(f"tells, {title}:" if audit[key] else f"tells, {title}: none")
            for tell in audit[key]:
                fix = tell["fix"] or "none (content)"
                if tell.get("prefix"):
                    fix = f"{fix} {tell['prefix']!r}"
                self.stdout.write(
                    f"  {tell['feature']:<32} base {_rate(tell['base_rate'])}  "
                    f"tuned {_rate(tell['tuned_rate'])}  fix: {fix}"
                )
        for normalisation in audit["normalisations"]:
            state = "on" if normalisation["enabled"] else "off"
            what = normalisation["kind"] + (
                f" {normalisation['prefix']!r}" if normalisation.get("prefix") else ""
            )
            self.stdout.write(
                f"normalisation {what} ({state}) removes {', '.join(normalisation['removes'])}"
            )
        for note in audit["notes"]:
            self.stdout.write(f"note: {note}")
