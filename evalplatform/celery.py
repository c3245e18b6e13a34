"""The Celery app. Without REDIS_URL the settings make every task run eagerly in-process."""

from __future__ import annotations

import os
import sys

from celery import Celery

from evalplatform.env_file import load_env_file, started_as_celery

# The worker and beat read the local .env as manage.py does; importing this module (the web
# app, the tests) reads nothing.
if started_as_celery(sys.argv):
    load_env_file()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalplatform.settings")

app = Celery("evalplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
