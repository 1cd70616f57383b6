"""Error reports (the debug page, admin e-mails) never show a credential.

Django's filter hides settings whose names contain KEY, PASS, SECRET, TOKEN, … but not
``DATABASE_URL``, ``CELERY_BROKER_URL`` or ``CACHE_URL``, whose values carry passwords. This one
also hides every setting named like a URL or DSN, and the user-info of any URL in other values.
"""

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class CredentialFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|DSN|BROKER|DATABASES|CACHES",
        flags=re.IGNORECASE,
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return USERINFO.sub(f"{self.cleansed_substitute}@", cleansed)
        return cleansed
