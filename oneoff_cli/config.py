"""Where ``oneoff`` finds its API URL and key: flags, then ``ONEOFF_API_URL`` /
``ONEOFF_API_KEY``, then the config file ``$XDG_CONFIG_HOME/oneoff/config.toml`` (default
``~/.config/oneoff/config.toml``).

The file holds a key, so it is written 0600 in a 0700 folder, and one that its group or others
may read is refused (the key may already have leaked: ``chmod 600`` it and consider rotating).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from oneoff_cli.exitcodes import CONFIG, CliError

KEYS = ("api_url", "api_key")


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    folder = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return folder / "oneoff" / "config.toml"


def read_file(path: Path | None = None) -> dict[str, str]:
    """The config file's settings ({} when there is none); an unsafe or broken one is an error."""
    import tomllib

    path = path or config_path()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", CONFIG) from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CliError(
                f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}): "
                f"run `chmod 600 {path}` (and consider rotating the key it holds)",
                CONFIG,
            )
        try:
            data = tomllib.load(f)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CliError(f"{path} is not valid TOML: {exc}", CONFIG) from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise CliError(f"{path}: unknown setting {unknown[0]!r} (known: api_url, api_key)", CONFIG)
    for name, value in data.items():
        if not isinstance(value, str):
            raise CliError(f"{path}: {name} must be a string", CONFIG)
    return data


def write_file(values: dict[str, str], path: Path | None = None) -> Path:
    """Write the settings (0600, folder 0700), atomically."""
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # TOML basic strings take JSON's escapes.
    text = "".join(f"{name} = {json.dumps(values[name])}\n" for name in KEYS if values.get(name))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class Settings:
    def __init__(self, api_url: str, api_key: str, url_source: str, key_source: str):
        self.api_url = api_url
        self.api_key = api_key
        self.url_source = url_source
        self.key_source = key_source


def resolve(api_url: str | None, api_key: str | None, *, need_key: bool = True) -> Settings:
    """Flags win over the environment, which wins over the config file."""
    url, url_source = api_url, "--api-url"
    key, key_source = api_key, "--api-key"
    if not url and os.environ.get("ONEOFF_API_URL"):
        url, url_source = os.environ["ONEOFF_API_URL"], "ONEOFF_API_URL"
    if not key and os.environ.get("ONEOFF_API_KEY"):
        key, key_source = os.environ["ONEOFF_API_KEY"], "ONEOFF_API_KEY"
    if not url or not key:
        stored = read_file()
        path = str(config_path())
        if not url and stored.get("api_url"):
            url, url_source = stored["api_url"], path
        if not key and stored.get("api_key"):
            key, key_source = stored["api_key"], path
    if not url:
        raise CliError(
            "no API URL: set ONEOFF_API_URL, pass --api-url, "
            "or run `oneoff config set api-url URL`",
            CONFIG,
        )
    if not key and need_key:
        raise CliError("no API key: set ONEOFF_API_KEY, or run `oneoff config set api-key`", CONFIG)
    return Settings(url, key or "", url_source, key_source if key else "")
