"""Settings: environment over secrets over defaults, and clear errors."""

import pytest

from tokenusage.config import (
    DEFAULT_DB_URL,
    ConfigError,
    load_settings,
    profile_link,
    read_secrets_file,
)

SECRETS = {"connections": {"tokenusage": {"url": "postgresql+psycopg://x@db/y"}}}


def test_precedence():
    assert load_settings({}, {}).db_url == DEFAULT_DB_URL
    assert load_settings({}, {}).is_default_db
    assert load_settings({}, SECRETS).db_url == "postgresql+psycopg://x@db/y"
    env = {"TOKENUSAGE_DB_URL": "sqlite:////tmp/a.sqlite", "TOKENUSAGE_TIMEZONE": "Asia/Tokyo"}
    settings = load_settings(env, SECRETS)
    assert settings.db_url == "sqlite:////tmp/a.sqlite" and settings.timezone == "Asia/Tokyo"


def test_secrets_file(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('[connections.tokenusage]\nurl = "duckdb:///x.duckdb"\n')
    assert read_secrets_file(path)["connections"]["tokenusage"]["url"] == "duckdb:///x.duckdb"
    assert read_secrets_file(tmp_path / "missing.toml") == {}
    path.write_text("not = [valid")
    with pytest.raises(ConfigError):
        read_secrets_file(path)


@pytest.mark.parametrize("bad", [
    {"TOKENUSAGE_TIMEZONE": "Moon/Base"},
    {"TOKENUSAGE_PROFILE_URL": "javascript:alert(1)//{user_id}"},
    {"TOKENUSAGE_PROFILE_URL": "https://crm.example.com/users"},
    {"TOKENUSAGE_PROFILE_URL": "ftp://crm.example.com/{user_id}"},
])
def test_bad_settings_are_rejected(bad):
    with pytest.raises(ConfigError):
        load_settings(bad, {})


def test_profile_links_encode_the_id():
    template = "https://crm.example.com/u/{user_id}?tab=ai"
    assert profile_link(template, "a/b c&d") == "https://crm.example.com/u/a%2Fb%20c%26d?tab=ai"
    assert profile_link(None, "ид 1") == "user?user_id=%D0%B8%D0%B4%201"
