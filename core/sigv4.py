"""AWS Signature Version 4 for JSON-protocol POSTs to ``/`` (what :mod:`core.dynamodb` sends).

Only this one request shape is signed here: method POST, path ``/``, no query string, and the headers
``content-type``, ``host``, ``x-amz-date``, ``x-amz-security-token`` (temporary credentials) and
``x-amz-target``, whose values this project sets (no whitespace to normalise). That keeps the signer a
few lines of ``hashlib``/``hmac`` instead of botocore's general one, which costs ~130 µs per request
and ~200 ms of imports on the first one. What does not change between requests is computed once: the
signing key (per day), the canonical headers (per credentials) and the timestamp (per second).
``tests/unit/test_dynamodb_client.py`` checks signatures against botocore's ``SigV4Auth`` at a fixed clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

ALGORITHM = "AWS4-HMAC-SHA256"
BLOCK_SIZE = 64  # SHA-256's block size, for HMAC
CONTENT_TYPE = "application/x-amz-json-1.0"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class _Fixed:
    """The parts of every request's canonical form that only change with the credentials."""

    canonical_head: str  # method, path, query and the headers before x-amz-date
    token_line: str  # the x-amz-security-token header line, or ""
    signed_headers: str
    credential_prefix: str  # "AWS4-HMAC-SHA256 Credential=<access key>/"


class RequestSigner:
    """Signs JSON-protocol POST / requests for one service, region and host."""

    def __init__(self, service: str, region: str, host: str) -> None:
        self._service = service
        self._region = region
        self._host = host
        self._fixed_for: Credentials | None = None
        self._fixed = _Fixed("", "", "", "")
        self._key_for: tuple[str, str] = ("", "")  # (secret, day) the cached key was derived for
        self._hashes = (hashlib.sha256(), hashlib.sha256())
        self._second = -1
        self._stamp = ""

    def headers(self, credentials: Credentials, target: str, body: bytes, epoch: float) -> dict[str, str]:
        """The signed request headers of ``body`` for the operation ``target`` at ``epoch`` (Unix seconds)."""
        stamp = self._timestamp(int(epoch))
        fixed = self._fixed_parts(credentials)
        canonical_request = (
            f"{fixed.canonical_head}x-amz-date:{stamp}\n{fixed.token_line}x-amz-target:{target}\n\n"
            f"{fixed.signed_headers}\n{hashlib.sha256(body).hexdigest()}"
        )
        scope = f"{stamp[:8]}/{self._region}/{self._service}/aws4_request"
        string_to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        inner, outer = self._signing_hashes(credentials.secret_key, stamp[:8])
        inner = inner.copy()
        inner.update(string_to_sign.encode())
        outer = outer.copy()
        outer.update(inner.digest())
        headers = {"content-type": CONTENT_TYPE, "host": self._host, "x-amz-date": stamp, "x-amz-target": target}
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        headers["authorization"] = (
            f"{fixed.credential_prefix}{scope}, SignedHeaders={fixed.signed_headers}, Signature={outer.hexdigest()}"
        )
        return headers

    def _fixed_parts(self, credentials: Credentials) -> _Fixed:
        if credentials is not self._fixed_for:
            token = credentials.token
            self._fixed = _Fixed(
                canonical_head=f"POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{self._host}\n",
                token_line=f"x-amz-security-token:{token}\n" if token else "",
                # SigV4 lists the signed headers sorted by name
                signed_headers="content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
                if token
                else "content-type;host;x-amz-date;x-amz-target",
                credential_prefix=f"{ALGORITHM} Credential={credentials.access_key}/",
            )
            self._fixed_for = credentials
        return self._fixed

    def _timestamp(self, second: int) -> str:
        if second != self._second:
            self._stamp, self._second = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)), second
        return self._stamp

    def _signing_hashes(self, secret: str, day: str) -> tuple[Any, Any]:
        """HMAC-SHA256 with the day's signing key, as its two keyed hash states to copy per request:
        RFC 2104 spelled out with hashlib, because ``hmac``'s Python-level wrappers cost as much again."""
        if self._key_for != (secret, day):
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, self._service, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            block = key.ljust(BLOCK_SIZE, b"\0")  # a 32-byte key is shorter than SHA-256's 64-byte block
            self._hashes = (
                hashlib.sha256(bytes(byte ^ 0x36 for byte in block)),
                hashlib.sha256(bytes(byte ^ 0x5C for byte in block)),
            )
            self._key_for = (secret, day)
        return self._hashes
