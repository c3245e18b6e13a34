from __future__ import annotations

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from annotations import roles, services
from annotations.management.commands._common import call


class Command(BaseCommand):
    help = "Creates a user in one role; the password comes from --password or standard input."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=roles.ROLES)
        parser.add_argument("--password", help="omit to read it from standard input")
        parser.add_argument("--email", default="")

    def handle(self, *args, **options) -> None:
        password = options["password"]
        if password is None:
            password = (
                getpass.getpass("Password: ")
                if sys.stdin.isatty()
                else sys.stdin.readline().rstrip("\n")
            )
        if not password:
            raise CommandError("an empty password is not allowed")
        user = call(
            self.stderr,
            services.user_create,
            username=options["username"],
            password=password,
            role=options["role"],
            email=options["email"],
        )
        self.stdout.write(self.style.SUCCESS(f"created {options['role']} {user.username}"))
