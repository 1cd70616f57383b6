"""Secrets that need no configuration: made at random on first start, kept in the var folder.

``SECRET_KEY`` (sessions, CSRF, API key hashes), ``FIELD_ENCRYPTION_KEY`` (env vars, snapshots and
log-stream tokens at rest) and ``ENV_DIGEST_KEY`` (the keyed hash of env snapshots shown as
``envDigest``) come from the environment when given there; otherwise from ``secrets.json`` in the
var folder, which the first process to start writes with mode 0600 in a folder of mode 0700 and
every later one reads. Back the file up with the database: without it the encrypted values are lost.
"""

import base64
import contextlib
import json
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

FILE_NAME = "secrets.json"


def _new_secrets() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        # A Fernet key: 32 random bytes, URL-safe base64.
        "FIELD_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "ENV_DIGEST_KEY": secrets.token_urlsafe(32),
    }


def _create(path: Path) -> None:
    """Write a new secrets file unless another process just did: written whole under a name of
    its own, then linked into place (``link`` fails if the name exists), so a process starting
    at the same moment never reads a half-written (or empty) file."""
    made = _new_secrets()
    tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(made, out, indent=2)
            out.write("\n")
        with contextlib.suppress(FileExistsError):  # another process's file is in place
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(var_dir: Path) -> dict[str, str]:
    """The generated secrets, creating them (and a private var folder) on first use."""
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = var_dir / FILE_NAME
    if not path.exists():
        _create(path)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"{path} is not a readable secrets file: {exc}") from exc
    missing = set(_new_secrets()) - set(stored)
    if missing:
        # A file from an older version: add what it lacks, keep what it has.
        stored = {**_new_secrets(), **stored}
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(stored, out, indent=2)
            out.write("\n")
        tmp.replace(path)
    return stored


def private_folder(folder: Path) -> None:
    """Make the var folder readable by its owner alone (it holds the SQLite file and secrets)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)


def environment(settings) -> dict[str, str]:
    """The secrets in force, as environment variables: what another process of the same
    installation (a worker started by a test or a benchmark) needs to read what this one wrote."""
    return {
        "SECRET_KEY": settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        "ENV_DIGEST_KEY": settings.ENV_DIGEST_KEY,
    }
