#!/usr/bin/env python
"""Django's command-line utility."""

from __future__ import annotations

import os
import sys


def main() -> None:
    from evalplatform.env_file import load_env_file

    load_env_file()  # the local .env; variables already in the environment win
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalplatform.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
