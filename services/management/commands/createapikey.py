from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from services.apikeys import create_key
from services.errors import DomainError
from services.models import Membership, Role, Workspace


class Command(BaseCommand):
    help = (
        "Create an API key for EMAIL in workspace NAME and print it alone on the last line (it "
        "is shown only this once). Creates the user and the workspace, with the user as admin, "
        "when they do not exist yet. The caps of the dashboard apply: API_KEYS_PER_HOUR keys a "
        "user creates in an hour, API_KEYS_PER_WORKSPACE active keys in a workspace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--workspace", required=True, help="The workspace's name.")
        parser.add_argument("--read-only", action="store_true", help="A key that cannot write.")
        parser.add_argument("--name", default="", help="A label for the key.")

    def handle(
        self, *args: Any, email: str, workspace: str, read_only: bool, name: str, **options: Any
    ) -> None:
        try:
            validate_email(email)
        except Exception as exc:
            raise CommandError(f"{email!r} is not an email address") from exc
        if not workspace.strip():
            raise CommandError("--workspace must not be empty")
        User = get_user_model()
        with transaction.atomic():
            user = User.objects.filter(email__iexact=email).first()
            if user is None:
                user = User.objects.create_user(username=email, email=email)
                user.set_unusable_password()
                user.save()
                self.stdout.write(f"Created user {email} (no password; set one to sign in).")
            ws, created = Workspace.objects.get_or_create(
                name=workspace.strip(), defaults={"email": email}
            )
            if created:
                self.stdout.write(f"Created workspace {ws.name} ({ws.id}).")
            membership, added = Membership.objects.get_or_create(
                workspace=ws, user=user, defaults={"role": Role.ADMIN}
            )
            if added:
                self.stdout.write(f"Added {email} to {ws.name} as admin.")
            try:
                key, secret = create_key(user, ws, name=name, read_only=read_only)
            except DomainError as error:  # a cap (services.apikeys): create nothing at all
                raise CommandError(error.message) from error
        self.stdout.write(
            f"API key {key.prefix}… for {email} in {ws.name} ({membership.role}"
            f"{', read-only' if read_only else ''}). It is shown only once:"
        )
        self.stdout.write(secret)
