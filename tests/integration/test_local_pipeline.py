"""The ingest path of the local stack, end to end: partner push → bus → queue → ingest → table and cache → search.

Everything runs from template.yaml through the same ``LocalStack`` and gateway objects ``make run``
serves: the partner bus and its rules in moto, the SQS poller calling the real ingest handler, the
quarantine table, the scheduled provider refresh pulling the fake skylink provider, and the change
pipes. Waits are bounded polls, never fixed sleeps.

The push tests share the flights example's offer and run in file order: the first one pushes the
stack.json example and expects it to be new; later ones push it again or push older sequences.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from domains.flights.offers import offers_from_item
from local.event_sources import SqsEventSource, SqsPoller
from local.fake_provider import FIRST_ID
from local.fake_provider import NAME as FAKE_PROVIDER
from local.gateway import LambdaFunction
from local.intrinsics import Intrinsics
from local.push_example import PARTNER
from local.stack import LocalStack
from tests.integration.conftest import TEST_SCHEDULE_SECONDS

pytestmark = pytest.mark.integration

SEARCH = "/v1/flights/search"
# How long an accepted event may take to show in search (measured locally: ~0.3-1 s warm, ~2 s cold).
VISIBLE_WITHIN_SECONDS = 10.0
SETTLED_WITHIN_SECONDS = 10.0
POLL_SECONDS = 0.05
Aws = Callable[[str], Any]


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f}s")
        time.sleep(POLL_SECONDS)


def error_of(response: TestResponse) -> dict[str, str]:
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return dict(body["error"])


def first_price(response: TestResponse) -> str:
    return str(response.get_json()["results"][0]["price"]["amount"])


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def push(local_stack: LocalStack) -> dict[str, Any]:
    """The partner push example of stack.json: a new lowest price for the flights example route and day."""
    assert local_stack.partner_push is not None, "the seeded flights example has no bookable offer"
    return local_stack.partner_push


@pytest.fixture(scope="module")
def search_params(push: dict[str, Any]) -> dict[str, str]:
    # limit=10 gives these tests a cache entry of their own: test_local_stack expects the example's
    # first read to be a MISS, whatever ran before it.
    return {**push["search"], "limit": "10"}


@pytest.fixture(scope="module")
def partner_key(local_stack: LocalStack) -> dict[str, str]:
    return {"x-api-key": local_stack.api_keys["partner"]}


@pytest.fixture(scope="module")
def basic_key(local_stack: LocalStack) -> dict[str, str]:
    return {"x-api-key": local_stack.api_keys["basic"]}


@pytest.fixture
def search(client: Client, basic_key: dict[str, str], search_params: dict[str, str]) -> Callable[[], TestResponse]:
    def run() -> TestResponse:
        response = client.get(SEARCH, query_string=search_params, headers=basic_key)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response

    return run


@pytest.fixture
def post_events(client: Client, push: dict[str, Any]) -> Callable[..., TestResponse]:
    def post(body: Any, headers: dict[str, str], *, raw: bytes | None = None) -> TestResponse:
        data = raw if raw is not None else json.dumps(body).encode()
        return client.post(push["path"], data=data, headers={**headers, "content-type": "application/json"})

    return post


def event_with(push: dict[str, Any], *, sequence: int, price: str, cabin: str | None = None) -> dict[str, Any]:
    """The example event with another sequence and price (and its own id); another cabin is another offer."""
    body = copy.deepcopy(push["body"])
    event = body["events"][0]
    event["id"] = str(uuid.uuid4())
    event["sequence"] = sequence
    event["data"]["offers"][0]["price"]["amount"] = price
    if cabin is not None:
        event["data"]["offers"][0]["cabin"] = cabin
    return body


def queue_url(local_stack: LocalStack, logical_id: str) -> str:
    return local_stack.queues[logical_id]


def queue_depth(aws: Aws, url: str) -> int:
    """Messages waiting plus messages being processed (received, not yet deleted)."""
    attributes = aws("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def wait_until_ingested(aws: Aws, local_stack: LocalStack) -> None:
    """Until the flights queue is empty: every event put before this call has been ingested and deleted.

    (The refresh adds to the same queue every few seconds, but each batch takes well under a second.)
    """
    url = queue_url(local_stack, "FlightsIngestQueue")
    wait_for(lambda: queue_depth(aws, url) == 0, SETTLED_WITHIN_SECONDS, "the flights ingest queue to empty")


@pytest.fixture
def bus_capture(local_stack: LocalStack, aws: Aws) -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """A queue behind a rule on the partner bus: ``capture(source)`` starts capturing, returns a reader.

    The reader returns the EventBridge events that reached the queue so far (and removes them).
    """
    sqs, events = aws("sqs"), aws("events")
    bus = local_stack.buses["PartnerBus"]
    created: list[tuple[str, str]] = []

    def capture(*sources: str) -> Callable[[], list[dict[str, Any]]]:
        name = f"test-capture-{uuid.uuid4().hex[:8]}"
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": list(sources)}))
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "capture", "Arn": arn}])
        created.append((name, url))

        def read() -> list[dict[str, Any]]:
            found = []
            for _ in range(10):  # bounded: at most 100 messages per read
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []
                if not messages:
                    break
                for message in messages:
                    found.append(json.loads(message["Body"]))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return found

        return read

    yield capture
    for name, url in created:
        events.remove_targets(Rule=name, EventBusName=bus, Ids=["capture"])
        events.delete_rule(Name=name, EventBusName=bus)
        sqs.delete_queue(QueueUrl=url)


# --- resolution: the template's Refs, locally --------------------------------------------------------


def test_only_the_partner_key_id_may_push_and_the_bus_exists(local_stack: LocalStack, aws: Aws) -> None:
    # PARTNER_KEY_IDS is `!Ref PartnerApiKey`: the id the gateway puts into requestContext.identity.apiKeyId
    keys = local_stack.gateway.api_keys
    partner_id = keys[local_stack.api_keys["partner"]].key_id
    basic_id = keys[local_stack.api_keys["basic"]].key_id
    allowed = local_stack.environment["PARTNER_KEY_IDS"].split(",")
    assert partner_id in allowed and basic_id not in allowed
    # EVENT_BUS_NAME is `!Ref PartnerBus`: the bus's name, and that bus is in moto with the ingest rules on it
    bus = local_stack.environment["EVENT_BUS_NAME"]
    rules = aws("events").list_rules(EventBusName=bus)["Rules"]
    assert {rule["Name"] for rule in rules} >= set(local_stack.rules.values())
    # PROVIDER_CREDENTIALS_SECRET is `!Ref ProviderCredentialsSecret`: an ARN Secrets Manager answers for
    secret = aws("secretsmanager").get_secret_value(SecretId=local_stack.environment["PROVIDER_CREDENTIALS_SECRET"])
    assert secret["ARN"] == local_stack.environment["PROVIDER_CREDENTIALS_SECRET"]
    assert FAKE_PROVIDER in json.loads(secret["SecretString"])


# --- partner push → search ---------------------------------------------------------------------------


def test_a_pushed_lowest_price_is_searched_first_as_a_miss_not_the_cached_body(
    push: dict[str, Any],
    search: Callable[[], TestResponse],
    post_events: Callable[..., TestResponse],
    partner_key: dict[str, str],
) -> None:
    # Given the example search is cached
    search()
    cached = search()
    assert cached.headers["X-Cache"] == "HIT"
    assert first_price(cached) != push["lowest_price"]
    # When a partner pushes a new lowest price for that route and day
    started = time.monotonic()
    response = post_events(push["body"], partner_key)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json() == {"accepted": 1, "rejected": []}

    # Then within seconds the search answers from DynamoDB (a MISS), with the pushed price first
    def pushed_price_first() -> TestResponse | None:
        answer = search()
        return answer if first_price(answer) == push["lowest_price"] else None

    fresh: TestResponse = wait_for(pushed_price_first, VISIBLE_WITHIN_SECONDS, "the pushed price in search")
    print(f"push → visible in search: {time.monotonic() - started:.2f}s")  # shown with pytest -s
    assert fresh.headers["X-Cache"] == "MISS"
    offer = fresh.get_json()["results"][0]
    pushed = push["body"]["events"][0]["data"]["offers"][0]
    assert (offer["flight_id"], offer["cabin"], offer["provider"]) == (pushed["flight_id"], pushed["cabin"], PARTNER)


def test_the_same_event_again_or_an_older_sequence_changes_nothing(
    local_stack: LocalStack,
    aws: Aws,
    push: dict[str, Any],
    search: Callable[[], TestResponse],
    post_events: Callable[..., TestResponse],
    partner_key: dict[str, str],
) -> None:
    # Given the example push has been ingested and its search is cached
    assert post_events(push["body"], partner_key).status_code == 202
    wait_for(lambda: first_price(search()) == push["lowest_price"], VISIBLE_WITHIN_SECONDS, "the pushed price")
    before = search()
    assert before.headers["X-Cache"] == "HIT"
    sequence = push["body"]["events"][0]["sequence"]
    cheaper = f"{Decimal(push['lowest_price']) / 2:.2f}"
    for body in (push["body"], event_with(push, sequence=sequence - 1, price=cheaper)):
        # When the same event arrives again, or an older one (even with a lower price)
        response = post_events(body, partner_key)
        assert response.get_json() == {"accepted": 1, "rejected": []}
        wait_until_ingested(aws, local_stack)
        # Then nothing was written or invalidated: the very same cached body comes back
        after = search()
        assert after.headers["X-Cache"] == "HIT"
        assert after.get_data() == before.get_data()


def test_a_basic_key_may_not_push(
    push: dict[str, Any],
    post_events: Callable[..., TestResponse],
    basic_key: dict[str, str],
    bus_capture: Callable[..., Callable[[], list[dict[str, Any]]]],
) -> None:
    captured = bus_capture("travel-search.partners")
    response = post_events(push["body"], basic_key)
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"
    assert captured() == []


def test_an_invalid_event_is_rejected_naming_the_field_and_nothing_is_written(
    push: dict[str, Any],
    search: Callable[[], TestResponse],
    post_events: Callable[..., TestResponse],
    partner_key: dict[str, str],
    bus_capture: Callable[..., Callable[[], list[dict[str, Any]]]],
) -> None:
    # Given a cached search and an event whose price has one decimal
    search()
    before = search()
    captured = bus_capture("travel-search.partners")
    sequence = push["body"]["events"][0]["sequence"] + 1000
    invalid = event_with(push, sequence=sequence, price="1.5")
    # When a partner pushes it
    response = post_events(invalid, partner_key)
    # Then it is answered 202 with the rejection naming the field, and nothing reaches the bus or the table
    assert response.status_code == 202
    body = response.get_json()
    assert body["accepted"] == 0
    ((rejection,),) = [body["rejected"]]
    assert rejection["index"] == 0 and rejection["id"] == invalid["events"][0]["id"]
    assert rejection["reason"].startswith("data.offers[0].price.amount")
    assert captured() == []
    after = search()
    assert after.headers["X-Cache"] == "HIT" and after.get_data() == before.get_data()


def test_an_oversized_or_malformed_body_is_refused_and_nothing_is_enqueued(
    push: dict[str, Any],
    post_events: Callable[..., TestResponse],
    partner_key: dict[str, str],
    bus_capture: Callable[..., Callable[[], list[dict[str, Any]]]],
) -> None:
    captured = bus_capture("travel-search.partners")
    # A body over 256 KB (valid events plus padding) → 413
    oversized = {**push["body"], "padding": "x" * (256 * 1024)}
    response = post_events(oversized, partner_key)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    # Malformed JSON → 400
    response = post_events(None, partner_key, raw=b'{"events": [')
    assert response.status_code == 400
    assert "JSON" in error_of(response)["message"]
    assert captured() == []
    # And the capture does see a valid push (so its silence above means something)
    assert post_events(push["body"], partner_key).status_code == 202
    assert [event["detail-type"] for event in captured()] == ["FlightOffersUpdated"]


# --- poison messages -----------------------------------------------------------------------------------


def quarantined(aws: Aws, local_stack: LocalStack, message_id: str) -> list[dict[str, Any]]:
    """Quarantine records of one SQS message (pk is the UTC day it arrived: today's or, at midnight, yesterday's)."""
    today = datetime.now(UTC).date()
    records = []
    for day in (today, today - timedelta(days=1)):
        response = aws("dynamodb").query(
            TableName=local_stack.tables["QuarantineTable"],
            KeyConditionExpression="pk = :day",
            FilterExpression="message_id = :id",
            ExpressionAttributeValues={":day": {"S": day.isoformat()}, ":id": {"S": message_id}},
        )
        records += response["Items"]
    return records


def test_a_poison_message_is_quarantined_with_the_reason_and_not_retried(local_stack: LocalStack, aws: Aws) -> None:
    # Given a message that is not even JSON, put straight on the flights queue (not through the API)
    url = queue_url(local_stack, "FlightsIngestQueue")
    message_id = aws("sqs").send_message(QueueUrl=url, MessageBody="{not json")["MessageId"]
    # When the poller hands it to the ingest function
    (record,) = wait_for(lambda: quarantined(aws, local_stack, message_id), SETTLED_WITHIN_SECONDS, "quarantine")
    # Then it is kept in the quarantine table with the reason
    assert record["domain"]["S"] == "flights"
    assert record["reason"]["S"] == "body: is not JSON"
    assert record["body"]["S"] == "{not json"
    # And it was acknowledged: the queue empties (a retried message would stay in flight for the
    # queue's visibility timeout) and nothing went to the dead-letter queue
    wait_until_ingested(aws, local_stack)
    assert queue_depth(aws, queue_url(local_stack, "FlightsIngestDlq")) == 0
    assert len(quarantined(aws, local_stack, message_id)) == 1


# --- the SQS poller: Lambda's delivery semantics -------------------------------------------------------

BATCHES: list[dict[str, Any]] = []


def raising_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stands in for an ingest function whose writes fail: records the batch, then raises."""
    BATCHES.append(event)
    raise RuntimeError("the table is unavailable")


def first_fails_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Reports the first record of each batch as failed, the others as done."""
    BATCHES.append(event)
    return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


@pytest.fixture
def test_poller(aws: Aws) -> Iterator[Callable[[str], tuple[SqsPoller, str, str]]]:
    """``test_poller(handler)``: a poller on a queue of this test (1 s visibility, DLQ after 2 receives)."""
    sqs = aws("sqs")
    urls: list[str] = []

    def build(handler: str) -> tuple[SqsPoller, str, str]:
        suffix = uuid.uuid4().hex[:8]
        dlq = sqs.create_queue(QueueName=f"test-dlq-{suffix}")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
        queue = sqs.create_queue(
            QueueName=f"test-queue-{suffix}", Attributes={"VisibilityTimeout": "1", "RedrivePolicy": redrive}
        )["QueueUrl"]
        urls.extend([queue, dlq])
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        template = {
            "Resources": {"TestFunction": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": handler}}}
        }
        function = LambdaFunction(Intrinsics(template), "TestFunction")
        source = SqsEventSource("TestMapping", "TestQueue", queue, arn, "TestFunction", 10, True)
        return SqsPoller(source, function, sqs, "us-east-1"), queue, dlq

    BATCHES.clear()
    yield build
    for url in urls:
        sqs.delete_queue(QueueUrl=url)


def test_the_function_gets_lambdas_sqs_event(aws: Aws, test_poller: Callable[..., Any]) -> None:
    poller, queue, _ = test_poller(f"{__name__}.first_fails_handler")
    sent = aws("sqs").send_message(
        QueueUrl=queue, MessageBody='{"k": 1}', MessageAttributes={"kind": {"DataType": "String", "StringValue": "t"}}
    )
    wait_for(lambda: poller.poll_once(), SETTLED_WITHIN_SECONDS, "a batch")
    ((record,),) = [batch["Records"] for batch in BATCHES]
    assert set(record) >= {
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody", "eventSource",
        "eventSourceARN", "awsRegion",
    }  # fmt: skip
    assert record["messageId"] == sent["MessageId"] and record["body"] == '{"k": 1}'
    assert record["md5OfBody"] == sent["MD5OfMessageBody"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1" and "SentTimestamp" in record["attributes"]
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "t", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }
    assert (record["eventSource"], record["awsRegion"]) == ("aws:sqs", "us-east-1")
    assert record["eventSourceARN"] == poller.source.queue_arn


def test_only_the_reported_failures_are_delivered_again(aws: Aws, test_poller: Callable[..., Any]) -> None:
    # Given two messages, and a function that reports the first of its batch as failed
    poller, queue, _ = test_poller(f"{__name__}.first_fails_handler")
    for body in ("a", "b"):
        aws("sqs").send_message(QueueUrl=queue, MessageBody=body)
    wait_for(lambda: poller.poll_once() == 2, SETTLED_WITHIN_SECONDS, "both messages in one batch")
    failed = BATCHES[0]["Records"][0]
    # Then the other one is deleted, and the failed one comes back after the visibility timeout
    assert poller.deleted == 1 and queue_depth(aws, queue) == 1
    wait_for(lambda: poller.poll_once(), SETTLED_WITHIN_SECONDS, "the redelivery")
    ((again,),) = [BATCHES[1]["Records"]]
    assert again["messageId"] == failed["messageId"]
    assert again["attributes"]["ApproximateReceiveCount"] == "2"


def test_a_batch_whose_function_raises_is_retried_then_dead_lettered(aws: Aws, test_poller: Callable[..., Any]) -> None:
    # Given a function that raises, on a queue that dead-letters after 2 receives
    poller, queue, dlq = test_poller(f"{__name__}.raising_handler")
    aws("sqs").send_message(QueueUrl=queue, MessageBody="x")
    # When it is delivered twice (the whole batch is left each time)
    for attempt in (1, 2):
        wait_for(lambda: poller.poll_once(), SETTLED_WITHIN_SECONDS, f"delivery {attempt}")
        assert BATCHES[-1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == str(attempt)
    assert poller.deleted == 0
    # Then the queue's redrive policy moves it to the dead-letter queue instead of a third delivery
    wait_for(lambda: poller.poll_once() == 0 and queue_depth(aws, dlq) == 1, SETTLED_WITHIN_SECONDS, "the DLQ")
    assert len(BATCHES) == 2


# --- scheduled refresh ---------------------------------------------------------------------------------


def skylink_sequences(aws: Aws, local_stack: LocalStack) -> list[int]:
    """Sequences of the fake provider's fares in the flights table (seeded offers have sequence 1)."""
    assert local_stack.provider is not None
    sequences = []
    for origin, destination in local_stack.provider.routes:
        response = aws("dynamodb").query(
            TableName=local_stack.tables["FlightsTable"],
            KeyConditionExpression="pk = :route",
            FilterExpression="provider = :provider",
            ExpressionAttributeValues={":route": {"S": f"{origin}-{destination}"}, ":provider": {"S": FAKE_PROVIDER}},
        )
        sequences += [
            offer.sequence
            for item in response["Items"]
            for offer in offers_from_item(item)
            if offer.sequence >= FIRST_ID
        ]
    return sequences


def test_the_scheduled_refresh_puts_provider_fares_in_the_flights_table(local_stack: LocalStack, aws: Aws) -> None:
    # Given the refresh schedule runs every few seconds against the fake skylink provider
    assert local_stack.provider is not None
    (refresh,) = [runner for runner in local_stack.schedules if runner.schedule.function == "ProviderRefreshFunction"]
    assert refresh.period == TEST_SCHEDULE_SECONDS
    bound = 2 * TEST_SCHEDULE_SECONDS + SETTLED_WITHIN_SECONDS
    # When it has run (and what it published is ingested)
    wait_for(lambda: refresh.runs >= 1, bound, "a scheduled refresh")
    wait_until_ingested(aws, local_stack)
    # Then the provider's fares are in the flights table, through the bus, the queue and ingest
    sequences = skylink_sequences(aws, local_stack)
    assert sequences, "no skylink fares in the flights table"
    runs, first = refresh.runs, max(sequences)
    # And the next pull wins over the earlier one (the fares it moved carry larger ids)
    wait_for(lambda: max(skylink_sequences(aws, local_stack)) > first, bound, "a newer refresh in the table")
    assert refresh.runs > runs and refresh.failures == 0


# --- change events (the pipes) -----------------------------------------------------------------------


def test_an_ingested_change_is_published_as_flight_offers_changed(
    push: dict[str, Any],
    post_events: Callable[..., TestResponse],
    partner_key: dict[str, str],
    bus_capture: Callable[..., Callable[[], list[dict[str, Any]]]],
) -> None:
    # Given a consumer of the change events on the partner bus
    captured = bus_capture("travel-search.changes")
    # (First class at a high price: another offer than the example's, which stays the cheapest.)
    sequence, price = int(time.time() * 1000), "4321.00"
    search = push["search"]
    route = f"{search['origin']}-{search['destination']}"
    # When a new offer is ingested
    pushed = post_events(event_with(push, sequence=sequence, price=price, cabin="first"), partner_key)
    assert pushed.get_json() == {"accepted": 1, "rejected": []}
    # Then the table's stream reaches the bus as FlightOffersChanged, shaped by the pipe's input template
    seen: list[dict[str, Any]] = []

    def pushed_offer(event: dict[str, Any]) -> dict[str, Any] | None:
        """The pushed offer in a change event's item (every offer of that provider and day), if there."""
        detail = event["detail"]
        offers = (value["M"] for name, value in (detail.get("item") or {}).items() if name.startswith("offer#"))
        return (
            next((o for o in offers if o["price"]["N"] == price and o["sequence"]["N"] == str(sequence)), None)
            if detail.get("route") == route
            else None
        )

    def change_arrived() -> dict[str, Any] | None:
        seen.extend(captured())
        return next((e for e in seen if pushed_offer(e)), None)

    change = wait_for(change_arrived, VISIBLE_WITHIN_SECONDS, "a FlightOffersChanged event")
    assert change["detail-type"] == "FlightOffersChanged"
    # One event per write, each with the whole new item (never a keys-only one)
    assert len([e for e in seen if pushed_offer(e)]) == 1
    assert (pushed_offer(change) or {})["cabin"] == {"S": "first"}
    assert change["detail"]["change"] in ("INSERT", "MODIFY")
    assert change["detail"]["sort_key"] == f"{search['date']}#{PARTNER}" and change["detail"]["provider"] == PARTNER
