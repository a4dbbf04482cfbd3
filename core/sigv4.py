"""AWS Signature Version 4 for JSON-protocol POSTs to ``/`` (what :mod:`core.dynamodb` sends).

Only this one request shape is signed here: method POST, path ``/``, no query string, and the headers
``content-type``, ``host``, ``x-amz-date``, ``x-amz-security-token`` (temporary credentials) and
``x-amz-target``, whose values this project sets (no whitespace to normalise). That keeps the signer a
few lines of ``hashlib``/``hmac`` instead of botocore's general one, which costs ~130 µs per request
and ~200 ms of imports on the first one. The signing key is derived once per day, region and service;
the timestamp is formatted once per second. ``tests/unit/test_dynamodb_client.py`` checks signatures
against botocore's ``SigV4Auth`` at a fixed clock.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

ALGORITHM = "AWS4-HMAC-SHA256"
CONTENT_TYPE = "application/x-amz-json-1.0"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


class RequestSigner:
    """Signs JSON-protocol POST / requests for one service and region."""

    def __init__(self, service: str, region: str) -> None:
        self._service = service
        self._region = region
        self._key_for: tuple[str, str] = ("", "")  # (secret, day) the cached key was derived for
        self._key = b""
        self._second = -1
        self._stamp = ""

    def headers(self, credentials: Credentials, host: str, target: str, body: bytes, epoch: float) -> dict[str, str]:
        """The signed request headers of ``body`` for the operation ``target`` at ``epoch`` (Unix seconds)."""
        stamp = self._timestamp(int(epoch))
        headers = {"content-type": CONTENT_TYPE, "host": host, "x-amz-date": stamp}
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        headers["x-amz-target"] = target  # the names are now in sorted order, as SigV4 wants them
        signed_headers = ";".join(headers)
        canonical_headers = "".join([f"{name}:{value}\n" for name, value in headers.items()])
        canonical_request = f"POST\n/\n\n{canonical_headers}\n{signed_headers}\n{hashlib.sha256(body).hexdigest()}"
        scope = f"{stamp[:8]}/{self._region}/{self._service}/aws4_request"
        string_to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        signature = hmac.digest(self._signing_key(credentials.secret_key, stamp[:8]), string_to_sign.encode(), "sha256")
        headers["authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature.hex()}"
        )
        return headers

    def _timestamp(self, second: int) -> str:
        if second != self._second:
            self._stamp, self._second = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)), second
        return self._stamp

    def _signing_key(self, secret: str, day: str) -> bytes:
        if self._key_for != (secret, day):
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, self._service, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._key, self._key_for = key, (secret, day)
        return self._key
