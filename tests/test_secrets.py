"""Secrets with no configuration: random, kept 0600 in a 0700 var folder, reused, overridable."""

import json
import os
import subprocess
import sys
from pathlib import Path

from config import secrets

ROOT = Path(__file__).resolve().parent.parent
SHOW = (
    "from django.conf import settings; import json; print(json.dumps({"
    "'secret': settings.SECRET_KEY, 'fernet': settings.FIELD_ENCRYPTION_KEYS,"
    "'digest': settings.ENV_DIGEST_KEY, 'debug': settings.DEBUG}))"
)


def settings_in(var_dir: Path, **env) -> dict:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "ENV_DIGEST_KEY", "DEBUG")
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        cwd=ROOT,
        env={**base, "ONEOFF_VAR_DIR": str(var_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_first_start_makes_private_random_secrets_and_later_starts_reuse_them(tmp_path):
    var = tmp_path / "var"
    first = settings_in(var)
    assert first["debug"] is False  # DEBUG is off unless asked for
    path = var / "secrets.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert var.stat().st_mode & 0o777 == 0o700
    stored = json.loads(path.read_text())
    assert first["secret"] == stored["SECRET_KEY"]
    assert first["fernet"] == [stored["FIELD_ENCRYPTION_KEY"]]
    assert first["digest"] == stored["ENV_DIGEST_KEY"]
    assert len(first["secret"]) >= 50
    assert "dev-only" not in first["secret"]

    assert settings_in(var) == first
    other = settings_in(tmp_path / "elsewhere")
    assert other["secret"] != first["secret"]
    assert other["fernet"] != first["fernet"]


def test_secrets_given_in_the_environment_win(tmp_path):
    given = settings_in(
        tmp_path,
        SECRET_KEY="s" * 60,
        FIELD_ENCRYPTION_KEY="a" * 43 + "=,b" + "b" * 42 + "=",
        ENV_DIGEST_KEY="d" * 40,
    )
    assert given["secret"] == "s" * 60
    assert given["fernet"] == ["a" * 43 + "=", "b" * 43 + "="]
    assert given["digest"] == "d" * 40


def test_a_world_readable_file_or_folder_is_made_private_again(tmp_path):
    var = tmp_path / "var"
    secrets.load(var)
    (var / "secrets.json").chmod(0o644)
    var.chmod(0o755)
    secrets.private_folder(var)
    secrets.load(var)
    assert (var / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert var.stat().st_mode & 0o777 == 0o700


def test_a_file_from_an_older_version_gains_the_missing_secret_and_keeps_the_rest(tmp_path):
    (tmp_path / "secrets.json").write_text(json.dumps({"SECRET_KEY": "kept" * 20}))
    loaded = secrets.load(tmp_path)
    assert loaded["SECRET_KEY"] == "kept" * 20
    assert loaded["ENV_DIGEST_KEY"]
    assert loaded["FIELD_ENCRYPTION_KEY"]
    assert secrets.load(tmp_path) == loaded


def test_env_digest_is_keyed_by_its_own_secret(service, settings):
    """envDigest is shown to viewers: keyed by a secret of its own, it is no guessing oracle for
    anyone who knows SECRET_KEY's public development fallback (gone) or the key itself."""
    import hashlib
    import hmac

    from jobs.models import EnvSnapshot

    service.env_vars.create(key="DATABASE_PASSWORD", value="hunter2")
    canonical = b'{"DATABASE_PASSWORD":"hunter2"}'
    snapshot = EnvSnapshot.capture(service)
    expected = hmac.new(settings.ENV_DIGEST_KEY.encode(), canonical, hashlib.sha256).hexdigest()
    assert snapshot.digest == expected

    settings.SECRET_KEY = "another-secret-key-" * 4
    assert EnvSnapshot.capture(service).digest == expected
    settings.ENV_DIGEST_KEY = "another-digest-key"
    assert EnvSnapshot.capture(service).digest != expected


def _load_at(var_dir: str, start, results) -> None:
    start.wait()
    try:
        results.put(json.dumps(secrets.load(Path(var_dir)), sort_keys=True))
    except Exception as exc:
        results.put(f"error: {exc}")


def test_processes_starting_at_once_all_read_the_same_whole_file(tmp_path):
    """A jobs and a builds worker (or web, worker and beat) starting at the same moment on a
    first run: one wrote the file while another read it empty ("is not a readable secrets file:
    Expecting value"). Twelve processes released together, eight rounds, fresh folder each."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for round_ in range(8):
        var_dir = tmp_path / f"var-{round_}"
        start, results = context.Event(), context.Queue()
        processes = [
            context.Process(target=_load_at, args=(str(var_dir), start, results)) for _ in range(12)
        ]
        for process in processes:
            process.start()
        start.set()
        seen = [results.get(timeout=30) for _ in processes]
        for process in processes:
            process.join(10)
        assert not [s for s in seen if s.startswith("error")], seen
        assert len(set(seen)) == 1
        assert [p.name for p in var_dir.iterdir()] == [secrets.FILE_NAME]  # no temporary left
