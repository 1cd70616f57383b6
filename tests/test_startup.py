"""A long-running process freezes what it loaded to start up (services.startup)."""

import os
import subprocess
import sys

from django.conf import settings

PROBE = """
import gc, sys
import config.asgi
print(gc.get_freeze_count(), "dashboard.views.jobs" in sys.modules)
"""


def test_the_web_process_keeps_its_startup_heap_out_of_full_collections():
    """Gunicorn's worker imports ``config.asgi``: by then every view is imported and frozen, so
    a full collection in a web process walks what requests made, not the 150,000 objects of
    Django and the views (0.12 s here, with every request thread stopped)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert int(out[0]) > 50_000  # Django, the URLconf, every view module and the ASGI stack
    assert out[1] == "True"  # the views were imported before the freeze, not on a request
