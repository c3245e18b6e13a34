from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotations.management.commands._common import call
from scoring.release import run_submit


class Command(BaseCommand):
    help = (
        "Submits a training run (JSON file): creates its study, starts pre-scoring, opens rating."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--as", dest="username", help="the submitting user (audit log)")

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CommandError(f"{path}: no such file") from exc
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path}: not valid UTF-8 (byte offset {exc.start})") from exc
        except RecursionError as exc:
            raise CommandError(f"{path}: invalid JSON: nested too deeply") from exc
        actor = None
        if options["username"]:
            actor = get_user_model().objects.filter(username=options["username"]).first()
            if actor is None:
                raise CommandError(f"no user {options['username']!r}")
        run, created = call(self.stderr, run_submit, payload=payload, actor=actor)
        verb = "created" if created else "already submitted, unchanged:"
        self.stdout.write(self.style.SUCCESS(f"run {run.run_id} {verb} study {run.study.slug}"))
        self.stdout.write(f"  rate:     /rate/{run.study.slug}/")
        self.stdout.write(f"  decision: /api/v1/runs/{run.run_id}/decision/")
