"""Settings read from the environment, then Streamlit secrets, then defaults."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PATH = PROJECT_ROOT / "data" / "tokenusage.sqlite"
DEFAULT_DB_URL = f"sqlite:///{DEFAULT_DB_PATH}"


class ConfigError(ValueError):
    """A setting has a value the dashboard cannot use."""


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_DB_URL
    timezone: str = "UTC"
    profile_url: str | None = None
    source_mapping: Mapping[str, Any] | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_default_db(self) -> bool:
        return self.db_url == DEFAULT_DB_URL


def validate_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"TOKENUSAGE_TIMEZONE={name!r} is not an IANA timezone name (e.g. Europe/Berlin)."
        ) from exc
    return name


def validate_profile_url(template: str) -> str:
    parts = urlsplit(template.replace("{user_id}", "x"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError("TOKENUSAGE_PROFILE_URL must be an http(s) URL.")
    if "{user_id}" not in template:
        raise ConfigError("TOKENUSAGE_PROFILE_URL must contain {user_id}.")
    return template


SECRETS_FILE = PROJECT_ROOT / ".streamlit" / "secrets.toml"


def read_secrets_file(path: Path = SECRETS_FILE) -> dict[str, Any]:
    """The Streamlit secrets file, for code running outside Streamlit (the CLI)."""
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def load_settings(
    environ: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None
) -> Settings:
    """Build settings: environment variables win over `secrets`, which win over defaults.

    Without `secrets`, `.streamlit/secrets.toml` is read when it exists.
    """
    env = os.environ if environ is None else environ
    secrets = read_secrets_file() if secrets is None else secrets
    secret_url = (secrets.get("connections") or {}).get("tokenusage", {}).get("url")
    db_url = env.get("TOKENUSAGE_DB_URL") or secret_url or DEFAULT_DB_URL
    timezone = validate_timezone(env.get("TOKENUSAGE_TIMEZONE") or "UTC")
    profile = env.get("TOKENUSAGE_PROFILE_URL") or None
    return Settings(
        db_url=db_url,
        timezone=timezone,
        profile_url=validate_profile_url(profile) if profile else None,
        source_mapping=load_source_mapping(secrets, env),
    )


def load_source_mapping(secrets: Mapping[str, Any], env: Mapping[str, str]
                        ) -> dict[str, Any] | None:
    """The `[source]` mapping of a company's own tables: from TOKENUSAGE_SOURCE_FILE if set,
    else from the secrets. None means the dashboard's own tables."""
    path = env.get("TOKENUSAGE_SOURCE_FILE")
    if path:
        try:
            with Path(path).open("rb") as handle:
                return tomllib.load(handle).get("source")
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"TOKENUSAGE_SOURCE_FILE={path}: {exc}") from exc
    return secrets.get("source") or None


def profile_link(template: str | None, user_id: str) -> str:
    """The profile URL of one user: the configured template, or the dashboard's user page."""
    encoded = quote(user_id, safe="")
    if template:
        return template.replace("{user_id}", encoded)
    return f"user?user_id={encoded}"
