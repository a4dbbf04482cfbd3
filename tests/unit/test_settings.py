"""Settings come from the environment once, and a missing variable is named."""

from __future__ import annotations

import pytest

from core.settings import SettingsError, settings_from_env

BASE = {"FLIGHTS_TABLE": "flights", "CACHE_HOST": "cache.local", "PAGE_TOKEN_SECRET": "s3cret"}


def test_defaults_for_a_local_plain_connection() -> None:
    settings = settings_from_env("FLIGHTS_TABLE", BASE)
    assert settings.table_name == "flights"
    assert (settings.cache.host, settings.cache.port, settings.cache.tls, settings.cache.auth) == (
        "cache.local",
        6379,
        False,
        "none",
    )
    assert settings.cache.ttl_seconds == 300


@pytest.mark.parametrize("missing", sorted(BASE))
def test_missing_variable_is_named(missing: str) -> None:
    environ = {name: value for name, value in BASE.items() if name != missing}
    with pytest.raises(SettingsError, match=missing):
        settings_from_env("FLIGHTS_TABLE", environ)


@pytest.mark.parametrize(
    ("name", "value"),
    [("CACHE_PORT", "abc"), ("CACHE_PORT", "70000"), ("CACHE_TLS", "maybe"), ("CACHE_AUTH", "password")],
)
def test_malformed_variable_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        settings_from_env("FLIGHTS_TABLE", {**BASE, name: value})


def test_iam_authentication_needs_user_and_cache_name() -> None:
    with pytest.raises(SettingsError, match="CACHE_USER"):
        settings_from_env("FLIGHTS_TABLE", {**BASE, "CACHE_AUTH": "iam"})
    settings = settings_from_env(
        "FLIGHTS_TABLE",
        {**BASE, "CACHE_AUTH": "iam", "CACHE_USER": "search", "CACHE_NAME": "travel", "CACHE_TLS": "true"},
    )
    assert (settings.cache.user, settings.cache.name, settings.cache.tls) == ("search", "travel", True)
