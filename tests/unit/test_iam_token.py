"""ElastiCache IAM auth tokens: checked against an independent SigV4 computation at a fixed clock."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from urllib.parse import parse_qsl, quote

from botocore.credentials import Credentials

from core.redis_client import iam_auth_token

NOW = dt.datetime(2026, 11, 28, 12, 30, 15, tzinfo=dt.UTC)
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def sigv4_signature(host: str, params: list[tuple[str, str]], secret: str, region: str, when: dt.datetime) -> str:
    """SigV4 query signature written from the AWS specification, independently of botocore."""
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params))
    canonical_request = "\n".join(
        ["GET", "/", canonical_query, f"host:{host}", "", "host", hashlib.sha256(b"").hexdigest()]
    )
    day, stamp = when.strftime("%Y%m%d"), when.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{day}/{region}/elasticache/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in (day, region, "elasticache", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_token_is_a_presigned_connect_request_with_a_valid_signature() -> None:
    token = iam_auth_token("travel-search", "travel-cache", "eu-west-1", CREDENTIALS, now=NOW)
    host, _, query = token.partition("/?")
    params = parse_qsl(query, keep_blank_values=True)
    signature = dict(params).pop("X-Amz-Signature")
    unsigned = [(k, v) for k, v in params if k != "X-Amz-Signature"]
    assert host == "travel-cache"
    assert dict(unsigned) == {
        "Action": "connect",
        "User": "travel-search",
        "ResourceType": "ServerlessCache",
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": "AKIDEXAMPLE/20261128/eu-west-1/elasticache/aws4_request",
        "X-Amz-Date": "20261128T123015Z",
        "X-Amz-Expires": "900",
        "X-Amz-SignedHeaders": "host",
    }
    assert signature == sigv4_signature(host, unsigned, CREDENTIALS.secret_key, "eu-west-1", NOW)


def test_token_of_a_replication_group_has_no_resource_type_and_changes_with_the_clock() -> None:
    first = iam_auth_token("u", "group", "us-east-1", CREDENTIALS, now=NOW, serverless=False)
    later = iam_auth_token("u", "group", "us-east-1", CREDENTIALS, now=NOW + dt.timedelta(seconds=1), serverless=False)
    assert "ResourceType" not in first
    assert first != later


def test_session_token_of_a_role_is_signed_into_the_token() -> None:
    token = iam_auth_token("u", "c", "us-east-1", Credentials("AKID", "secret", "session-token"), now=NOW)
    assert dict(parse_qsl(token.partition("/?")[2]))["X-Amz-Security-Token"] == "session-token"
