"""Opaque, tamper-evident page tokens.

A token carries the offset of the next page and a fingerprint of the query it belongs to, signed
with HMAC-SHA256. A token that was altered, signed with another key, or issued for a different
query is rejected as an invalid ``page_token``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

from core.errors import InvalidParameter

_VERSION = 1
_LAYOUT = struct.Struct(">BI8s")  # version, offset, query fingerprint
_MAC_BYTES = 16
MAX_TOKEN_LENGTH = 64


def query_fingerprint(canonical_query: str) -> bytes:
    return hashlib.sha256(canonical_query.encode()).digest()[:8]


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, offset: int, canonical_query: str) -> str:
        """The token for the page at ``offset`` of the query (``canonical_query`` without the offset)."""
        payload = _LAYOUT.pack(_VERSION, offset, query_fingerprint(canonical_query))
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def decode(self, token: str, canonical_query: str) -> int:
        """The offset in a token; :class:`InvalidParameter` when it is malformed, altered or foreign."""
        invalid = InvalidParameter("page_token", "is not a valid page token for this search")
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise invalid
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        if len(raw) != _LAYOUT.size + _MAC_BYTES:
            raise invalid
        payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise invalid
        version, offset, fingerprint = _LAYOUT.unpack(payload)
        if version != _VERSION or not hmac.compare_digest(fingerprint, query_fingerprint(canonical_query)):
            raise invalid
        return int(offset)
