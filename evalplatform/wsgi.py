from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from evalplatform.env_file import load_env_file

load_env_file()  # the local .env; variables already in the environment win
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalplatform.settings")
application = get_wsgi_application()
