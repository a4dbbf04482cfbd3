"""core.dynamodb and core.sigv4: signatures botocore agrees with, botocore's retry rules, errors as ClientError."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials
from botocore.exceptions import ClientError

from core.dynamodb import MAX_ATTEMPTS, DynamoDBClient, DynamoUnavailable, HttpReply, TransportError
from core.errors import ServiceUnavailable
from core.sigv4 import Credentials, RequestSigner
from core.store import DynamoTable, StoreUnavailable, Writes

NOW = datetime(2026, 11, 28, 12, 30, 15, tzinfo=UTC)
HOST = "dynamodb.eu-west-1.amazonaws.com"
KEYS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
TEMPORARY = Credentials("ASIAEXAMPLE", "secret/with+chars", "IQoJb3JpZ2luX2VjE//token==")
QUERY = {
    "TableName": "flights",
    "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
    "ExpressionAttributeValues": {":pk": {"S": "JFK-LHR"}, ":prefix": {"S": "2026-12-01#"}},
}


def botocore_authorization(credentials: Credentials, headers: dict[str, str], body: bytes) -> str:
    """botocore's own SigV4 header signature of the same request at the same time."""
    request = AWSRequest(method="POST", url=f"https://{HOST}/", data=body, headers=headers)
    request.context["timestamp"] = NOW.strftime("%Y%m%dT%H%M%SZ")
    auth = SigV4Auth(
        BotocoreCredentials(credentials.access_key, credentials.secret_key, credentials.token), "dynamodb", "eu-west-1"
    )
    auth._modify_request_before_signing(request)
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    auth._inject_signature_to_request(request, signature)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize("credentials", [KEYS, TEMPORARY], ids=["keys", "session-token"])
def test_signature_is_the_one_botocore_computes(credentials: Credentials) -> None:
    body = json.dumps(QUERY).encode()
    headers = RequestSigner("dynamodb", "eu-west-1", HOST).headers(
        credentials, "DynamoDB_20120810.Query", body, NOW.timestamp()
    )
    expected_headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.Query",
    }
    assert headers["authorization"] == botocore_authorization(credentials, expected_headers, body)
    assert headers["x-amz-date"] == "20261128T123015Z"
    assert headers.get("x-amz-security-token") == credentials.token


def test_signing_key_follows_the_day_and_the_secret() -> None:
    signer = RequestSigner("dynamodb", "eu-west-1", HOST)
    signed = []
    for credentials, when in ((KEYS, NOW), (KEYS, NOW.replace(day=29)), (TEMPORARY, NOW.replace(day=29))):
        headers = signer.headers(credentials, "DynamoDB_20120810.Query", b"{}", when.timestamp())
        signed.append(headers["authorization"].rpartition("Signature=")[2])
    assert len(set(signed)) == 3


class Replies:
    """The client's Transport port answering from a list, as DynamoDB would over HTTP."""

    host = HOST

    def __init__(self, *replies: HttpReply | Exception) -> None:
        self.replies = list(replies)
        self.sent: list[tuple[dict[str, str], bytes]] = []

    def post(self, body: bytes, headers: dict[str, str]) -> HttpReply:
        self.sent.append((headers, body))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def ok(body: dict[str, Any]) -> HttpReply:
    data = json.dumps(body).encode()
    return HttpReply(200, data, str(zlib.crc32(data)))


def error(code: str, status: int = 400, **fields: Any) -> HttpReply:
    data = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "no", **fields}).encode()
    return HttpReply(status, data, None)


def client_on(transport: Replies, sleeps: list[float] | None = None) -> DynamoDBClient:
    return DynamoDBClient(
        "eu-west-1",
        transport,
        credentials=lambda: KEYS,
        sleep=(sleeps if sleeps is not None else []).append,
        clock=NOW.timestamp,
        jitter=lambda: 1.0,
    )


def test_a_query_is_one_signed_post_and_its_body_is_the_response() -> None:
    items = [{"pk": {"S": "JFK-LHR"}, "sk": {"S": "2026-12-01#BA117"}, "price": {"N": "512.30"}}]
    transport = Replies(ok({"Items": items, "Count": 1, "ScannedCount": 1}))
    response = client_on(transport).query(**QUERY)
    assert response["Items"] == items
    ((headers, body),) = transport.sent
    assert json.loads(body) == QUERY
    assert headers["x-amz-target"] == "DynamoDB_20120810.Query"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/eu-west-1/dynamodb/")


def test_throttling_is_retried_with_growing_backoff_then_raised_as_client_error() -> None:
    sleeps: list[float] = []
    transport = Replies(*[error("ProvisionedThroughputExceededException")] * MAX_ATTEMPTS)
    with pytest.raises(ClientError) as raised:
        client_on(transport, sleeps).query(**QUERY)
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert len(transport.sent) == MAX_ATTEMPTS == 3
    assert sleeps == [1.0, 2.0]
    # every attempt is the same request, signed again
    assert len({body for _, body in transport.sent}) == 1


@pytest.mark.parametrize(
    "fault",
    [
        error("ThrottlingException"),
        error("InternalServerError", 500),
        HttpReply(503, b"", None),
        TransportError("ReadTimeoutError: read timed out"),
        HttpReply(200, b'{"Items": []}', "12345"),  # a CRC32 that does not match the body
    ],
    ids=["throttled", "internal-error", "unavailable", "timeout", "crc-mismatch"],
)
def test_transient_faults_are_retried_and_the_call_succeeds(fault: HttpReply | Exception) -> None:
    transport = Replies(fault, ok({"Items": [], "Count": 0}))
    assert client_on(transport).query(**QUERY)["Items"] == []
    assert len(transport.sent) == 2


def test_a_client_error_is_not_retried_and_keeps_the_error_body() -> None:
    reasons = [{"Code": "ConditionalCheckFailed"}]
    transport = Replies(error("ValidationException", CancellationReasons=reasons))
    with pytest.raises(ClientError) as raised:
        client_on(transport).update_item(TableName="t", Key={"pk": {"S": "a"}})
    assert len(transport.sent) == 1
    assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": "no"}
    assert raised.value.response["CancellationReasons"] == reasons
    assert raised.value.operation_name == "UpdateItem"


def test_no_answer_on_any_attempt_is_dynamo_unavailable_and_a_search_gets_a_503() -> None:
    transport = Replies(*[TransportError("ConnectionRefusedError")] * MAX_ATTEMPTS)
    with pytest.raises(DynamoUnavailable, match="3 attempts"):
        client_on(transport).get_item(TableName="t", Key={})
    transport = Replies(*[TransportError("ConnectionRefusedError")] * MAX_ATTEMPTS)
    with pytest.raises(ServiceUnavailable):
        DynamoTable("flights", client_on(transport)).query_prefix("JFK-LHR", "2026-12-01#")


def test_the_client_sends_no_scan() -> None:
    transport = Replies()
    with pytest.raises(ValueError, match="Scan: not an operation"):
        client_on(transport).call("Scan", {"TableName": "flights"})
    assert transport.sent == []


class Write:
    def __init__(self, sk: str, sequence: int, price: str = "1.00") -> None:
        self.key = {"pk": {"S": "JFK-LHR"}, "sk": {"S": sk}}
        self.attributes = {"price": {"N": price}}
        self.sequence = sequence
        self.defaults: dict[str, Any] = {}
        self.per_attribute = False


def test_upsert_all_sends_only_the_newest_write_of_an_item_and_reports_stale_ones() -> None:
    transport = Replies(error("ConditionalCheckFailedException"), ok({}))
    writes = [Write("a", 5), Write("b", 3), Write("a", 7, "2.00"), Write("a", 6)]
    landed = Writes(DynamoTable("flights", client_on(transport))).upsert_all(writes)
    # "a" at 7 landed; "b" was already as new; the older writes of "a" were never sent
    assert landed == [False, False, True, False]
    sent = [json.loads(body) for _, body in transport.sent]
    assert [(request["Key"]["sk"]["S"], request["ExpressionAttributeValues"][":seq"]["N"]) for request in sent] == [
        ("b", "3"),
        ("a", "7"),
    ]
    assert sent[1]["ConditionExpression"] == "attribute_not_exists(#seq) OR #seq < :seq"
    assert sent[1]["ExpressionAttributeValues"][":a0"] == {"N": "2.00"}


def test_upsert_all_raises_store_unavailable_when_dynamodb_keeps_throttling() -> None:
    transport = Replies(ok({}), *[error("ProvisionedThroughputExceededException")] * MAX_ATTEMPTS)
    with pytest.raises(StoreUnavailable):
        Writes(DynamoTable("flights", client_on(transport))).upsert_all([Write("a", 1), Write("b", 1), Write("c", 1)])
    # the first write landed, the second was tried MAX_ATTEMPTS times, the third never sent
    assert len(transport.sent) == 1 + MAX_ATTEMPTS
