"""Configuration of one function, read from its environment once per container."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(RuntimeError):
    """A required environment variable is missing or malformed (a deployment error)."""


@dataclass(frozen=True, slots=True)
class CacheSettings:
    host: str
    port: int
    tls: bool
    auth: str  # "none" (local) or "iam" (ElastiCache IAM authentication)
    user: str  # ElastiCache user id, for IAM authentication
    name: str  # serverless cache (or replication group) name, signed into the IAM token
    ttl_seconds: int
    region: str


@dataclass(frozen=True, slots=True)
class Settings:
    table_name: str
    cache: CacheSettings
    page_token_secret: bytes  # empty for a function whose results are not paged


def _required(environ: Mapping[str, str], name: str, purpose: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set ({purpose})")
    return value


def _integer(environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"environment variable {name} must be between {minimum} and {maximum}, got {value}")
    return value


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise SettingsError(f"environment variable {name} must be true or false, got {raw!r}")


def cache_settings_from_env(environ: Mapping[str, str] = os.environ) -> CacheSettings:
    """Cache connection settings; IAM authentication needs ``CACHE_USER`` and ``CACHE_NAME``."""
    auth = environ.get("CACHE_AUTH", "none").strip().lower() or "none"
    if auth not in ("none", "iam"):
        raise SettingsError(f"environment variable CACHE_AUTH must be none or iam, got {auth!r}")
    iam = auth == "iam"
    return CacheSettings(
        host=_required(environ, "CACHE_HOST", "the cache endpoint address"),
        port=_integer(environ, "CACHE_PORT", 6379, 1, 65535),
        tls=_flag(environ, "CACHE_TLS", False),
        auth=auth,
        user=_required(environ, "CACHE_USER", "the ElastiCache IAM user") if iam else "",
        name=_required(environ, "CACHE_NAME", "the cache name signed into IAM tokens") if iam else "",
        ttl_seconds=_integer(environ, "CACHE_TTL_SECONDS", 300, 1, 86_400),
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )


def settings_from_env(
    table_variable: str, environ: Mapping[str, str] = os.environ, *, page_tokens: bool = True
) -> Settings:
    """Settings of a search function whose DynamoDB table name is in ``table_variable``.

    ``page_tokens``: the function pages its results, so it needs ``PAGE_TOKEN_SECRET``.
    Raises :class:`SettingsError` naming the first missing or malformed variable.
    """
    secret = _required(environ, "PAGE_TOKEN_SECRET", "the key that signs page tokens") if page_tokens else ""
    return Settings(
        table_name=_required(environ, table_variable, "the DynamoDB table of this function"),
        cache=cache_settings_from_env(environ),
        page_token_secret=secret.encode(),
    )


@dataclass(frozen=True, slots=True)
class IngestSettings:
    table_name: str
    quarantine_table: str
    cache: CacheSettings


def ingest_settings_from_env(table_variable: str, environ: Mapping[str, str] = os.environ) -> IngestSettings:
    """Settings of an ingest function: its domain's table, the quarantine table and the cache."""
    return IngestSettings(
        table_name=_required(environ, table_variable, "the DynamoDB table this function writes"),
        quarantine_table=_required(environ, "QUARANTINE_TABLE", "where invalid events are kept with the reason"),
        cache=cache_settings_from_env(environ),
    )
