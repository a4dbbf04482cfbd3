"""AWS Signature Version 4 for JSON-protocol POSTs to ``/`` (what :mod:`core.dynamodb` sends).

Only this one request shape is signed here: method POST, path ``/``, no query string, a fixed set of
headers. That keeps the signer a few lines of ``hashlib``/``hmac`` instead of botocore's general one,
which costs ~130 µs per request and ~200 ms of imports on the first one. The signing key is derived
once per day, region and service. ``tests/unit/test_dynamodb_client.py`` checks every signature
against botocore's ``SigV4Auth`` at a fixed clock.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


class RequestSigner:
    """Signs POST / requests for one service and region; ``headers`` for :meth:`sign` are lower-case."""

    def __init__(self, service: str, region: str) -> None:
        self._service = service
        self._region = region
        self._key_for: tuple[str, str] = ("", "")  # (secret, day) the cached key was derived for
        self._key = b""

    def sign(self, credentials: Credentials, host: str, headers: dict[str, str], body: bytes, now: datetime) -> None:
        """Add ``x-amz-date``, ``x-amz-security-token`` (temporary credentials) and ``authorization``.

        Every header in ``headers`` is signed, ``host`` included (it is added if missing).
        """
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        headers["host"] = host
        headers["x-amz-date"] = stamp
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        names = sorted(headers)
        signed_headers = ";".join(names)
        canonical_request = "POST\n/\n\n{}\n\n{}\n{}".format(
            "\n".join(f"{name}:{' '.join(headers[name].split())}" for name in names),
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        )
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        string_to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(credentials.secret_key, day), string_to_sign.encode(), hashlib.sha256)
        headers["authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature.hexdigest()}"
        )

    def _signing_key(self, secret: str, day: str) -> bytes:
        if self._key_for != (secret, day):
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, self._service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._key, self._key_for = key, (secret, day)
        return self._key
