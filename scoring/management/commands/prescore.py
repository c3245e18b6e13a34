from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError

from annotations import selectors as annotation_selectors
from annotations.management.commands._common import call
from scoring import selectors, services
from scoring.models import JobStatus


class Command(BaseCommand):
    help = "Starts a pre-scoring job for a study (only missing scores are computed)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--metrics", nargs="+", help="metric names, or judge / fluency / model_perplexity"
        )
        parser.add_argument(
            "--judge", help='judge settings as JSON, e.g. {"backend": "openai", ...}'
        )
        parser.add_argument("--wait", action="store_true", help="wait for the job to finish")
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")

    def handle(self, *args, **options) -> None:
        study = call(self.stderr, annotation_selectors.study_get, slug=options["slug"])
        judge = None
        if options["judge"]:
            try:
                judge = json.loads(options["judge"])
            except json.JSONDecodeError as exc:
                raise CommandError(f"--judge is not valid JSON: {exc}") from exc
        job = call(
            self.stderr,
            services.scoring_job_start,
            study=study,
            metrics=options["metrics"],
            judge=judge,
        )
        self.stdout.write(f"scoring job {job.pk} started for {study.slug}")
        progress = selectors.job_progress(job=selectors.job_get(job_id=job.pk))
        for skipped in progress.skipped:
            self.stdout.write(f"  skipped {skipped['scorer']}: {skipped['reason']}")
        if not options["wait"]:
            return
        deadline = time.monotonic() + options["timeout"]
        while True:
            progress = selectors.job_progress(job=selectors.job_get(job_id=job.pk))
            if progress.finished_at is not None:
                break
            if time.monotonic() > deadline:
                raise CommandError(
                    f"job {job.pk} not finished after {options['timeout']:.0f} s "
                    f"({progress.done}/{progress.total} chunks)"
                )
            time.sleep(1.0)
        for error in progress.errors:
            self.stderr.write(f"  failed {error['kind']} chunk {error['chunk']}: {error['error']}")
        for warning in progress.warnings:
            self.stdout.write(f"  warning: {warning}")
        summary = f"job {job.pk} {progress.status}: {progress.done}/{progress.total} chunks done"
        if progress.status != JobStatus.DONE:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
