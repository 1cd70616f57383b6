import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from services.models import Membership, Role, Workspace

DEMO_EMAIL = "admin@example.com"
DEMO_WORKSPACE = "Demo"


class Command(BaseCommand):
    help = "Create the demo workspace and its admin (once) and print how to sign in."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://localhost:8000")

    def handle(self, *args, url: str, **options):
        User = get_user_model()
        password_file = settings.VAR_DIR / "demo-password"
        user = User.objects.filter(username=DEMO_EMAIL).first()
        if user is None or not password_file.exists():
            password = secrets.token_urlsafe(12)
            user = user or User(username=DEMO_EMAIL, email=DEMO_EMAIL)
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            password_file.write_text(password)
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        workspace, _ = Workspace.objects.get_or_create(
            name=DEMO_WORKSPACE, defaults={"email": DEMO_EMAIL}
        )
        Membership.objects.get_or_create(
            workspace=workspace, user=user, defaults={"role": Role.ADMIN}
        )
        self.stdout.write(
            f"Sign in at {url}/ as {DEMO_EMAIL} with password {password} "
            f"(workspace {workspace.name}, {workspace.id}; admin at {url}/admin/)"
        )
