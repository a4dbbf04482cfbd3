"""``ingest_validation_vs_write`` and ``ingest_records_per_s``: the flights ingest path on one core.

Records are SQS messages as the flights ingest queue delivers them: an EventBridge event (source
``travel-search.partners``) whose detail holds one ``FlightOffersUpdated`` event with the offers of
one route and day from the local stack's seed (3–6 offers, as providers publish them). DynamoDB is
the functions' own client (core.dynamodb) with its ``UpdateItem`` replies queued on its transport
outside the timed region (fixtures.CannedReplies: it still signs every request and parses every
reply); the cache invalidation is the real ``SearchCache.invalidate`` on a private redis-server.

* validation: ``EventContracts.problem`` per record (the path ingest takes) ÷ the write path per record:
  ``core.store.Writes.upsert_all`` of the record's write (one conditional UpdateItem of its route and
  day's item, holding its offers). Medians of per-batch ratios.
* records/s: ``IngestPipeline.run`` on SQS batches of the template's ``BatchSize`` (10), EMF flushed per
  batch as the Lambda wrapper does; records ÷ process CPU seconds, median over chunks of batches.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import orjson

from bench import fixtures
from bench.results import Figure
from core.cache import SearchCache
from core.observability import EmfMetrics
from core.redis_client import RedisCacheStore, cache_policy, connect
from core.settings import CacheSettings
from core.store import DynamoTable, Writes
from domains.flights.offers import FlightOffer
from integrations.contracts import event_contracts
from integrations.flights_ingest import FLIGHTS, flight_upserts
from integrations.ingest import IngestPipeline
from local.redis_server import RedisServer
from local.template import load_template

VALIDATION_GOAL = 0.25
THROUGHPUT_GOAL = 10_000
ROUNDS = 15
BATCHES_PER_CHUNK = 40


def offer_events() -> list[dict[str, Any]]:
    """One FlightOffersUpdated event per seeded route and day (JFK-LHR and LHR-JFK, 60 days each)."""
    events = []
    occurred = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    key = lambda offer: (offer.origin, offer.destination, offer.date)  # noqa: E731
    for sequence, ((origin, destination, day), group) in enumerate(
        groupby(sorted(fixtures.seeded_offers(), key=key), key=key), start=1
    ):
        offers: list[FlightOffer] = list(group)
        events.append(
            {
                "id": str(uuid.uuid4()),
                "type": "FlightOffersUpdated",
                "version": 1,
                "sequence": sequence,
                "occurred_at": occurred,
                "data": {
                    "origin": origin,
                    "destination": destination,
                    "date": day,
                    "offers": [
                        {
                            "flight_id": offer.flight_id,
                            "carrier": offer.carrier,
                            "departure": offer.departure,
                            "arrival": offer.arrival,
                            "duration_minutes": offer.duration_minutes,
                            "cabin": offer.cabin,
                            "price": {"amount": f"{offer.price:.2f}", "currency": offer.currency},
                            "seats_left": offer.seats_left,
                        }
                        for offer in offers
                    ],
                },
            }
        )
    return events


def sqs_record(event: dict[str, Any]) -> dict[str, Any]:
    body = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": event["type"],
        "source": "travel-search.partners",
        "account": "123456789012",
        "time": event["occurred_at"],
        "region": fixtures.REGION,
        "resources": [],
        "detail": {"provider": "skylink", "received_at": event["occurred_at"], "event": event},
    }
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "AQEB" + uuid.uuid4().hex * 4,
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795875000000"},
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:travel-search-flights-ingest",
        "awsRegion": fixtures.REGION,
    }


def batch_size() -> int:
    mapping = load_template()["Resources"]["FlightsIngestEventSourceMapping"]["Properties"]
    return int(mapping.get("BatchSize", 10))


def measure() -> tuple[Figure, Figure]:
    with fixtures.environment(fixtures.AWS_ENVIRONMENT):
        return _measure()


def _measure() -> tuple[Figure, Figure]:
    events = offer_events()
    contracts = event_contracts()
    assert all(contracts.problem(event) is None for event in events)
    received = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    upserts = [flight_upserts(event, "skylink", received) for event in events]
    offers = sum(len(event["data"]["offers"]) for event in events)
    calls = sum(distinct_items(record) for record in upserts)
    replies = fixtures.CannedReplies()
    client = fixtures.functions_dynamodb_client(replies)
    writes = Writes(DynamoTable(fixtures.FLIGHTS_TABLE, client))
    cpu = time.process_time
    ratios, validation_us, write_us = [], [], []
    if True:
        for round_ in range(-1, ROUNDS):
            gc.collect()
            started = cpu()
            for event in events:
                contracts.problem(event)
            validating = cpu() - started
            for _ in range(calls):
                replies.add_response("UpdateItem", {})
            writing = 0.0
            for record in upserts:
                started = cpu()
                writes.upsert_all(record)
                writing += cpu() - started
            if round_ >= 0:
                ratios.append(validating / writing)
                validation_us.append(validating / len(events) * 1e6)
                write_us.append(writing / len(events) * 1e6)
        validation = Figure(
            name="ingest_validation_vs_write",
            value=fixtures.median(ratios),
            goal=VALIDATION_GOAL,
            unit="ratio",
            samples=ratios,
            details={
                "what": "EventContracts.problem CPU per record / Writes.upsert_all CPU per record (stubbed)",
                "records": len(events),
                "offers_per_record": offers / len(events),
                "validation_us_per_record": fixtures.median(validation_us),
                "write_us_per_record": fixtures.median(write_us),
                "write_us_per_offer": fixtures.median(write_us) * len(events) / offers,
                "jsonschema_only_us_per_record": _jsonschema_us(contracts, events),
            },
        )
        throughput = _throughput(events, client, replies)
    return validation, throughput


def distinct_items(upserts: list[Any]) -> int:
    """How many UpdateItems ``Writes.upsert_all`` sends for these upserts: one per distinct item (the
    seed has a few flights listed twice on a day, which are one item)."""
    return len({(upsert.key["pk"]["S"], upsert.key["sk"]["S"]) for upsert in upserts})


def _jsonschema_us(contracts: Any, events: list[dict[str, Any]]) -> float:
    """What validation cost before the fast path: jsonschema on every record (for the report)."""
    started = time.process_time()
    for event in events[:60]:
        contracts.explain(event)
    return (time.process_time() - started) / 60 * 1e6


def _throughput(events: list[dict[str, Any]], client: Any, replies: fixtures.CannedReplies) -> Figure:
    size = batch_size()
    batches = [
        {"Records": [sqs_record(event) for event in events[start : start + size]]}
        for start in range(0, len(events), size)
    ]
    offers_in = [
        sum(len(json.loads(r["body"])["detail"]["event"]["data"]["offers"]) for r in b["Records"]) for b in batches
    ]
    received = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    calls_in = [
        distinct_items(
            [u for event in events[start : start + size] for u in flight_upserts(event, "skylink", received)]
        )
        for start in range(0, len(events), size)
    ]
    with RedisServer() as server:
        settings = CacheSettings(server.host, server.port, False, "none", "", "", 14400, fixtures.REGION)
        metrics, stream = _recording_metrics()
        cache = SearchCache("flights", RedisCacheStore(lambda: connect(settings)), metrics, cache_policy(14400))
        pipeline = IngestPipeline(
            FLIGHTS,
            event_contracts(),
            Writes(DynamoTable(fixtures.FLIGHTS_TABLE, client)),
            Writes(DynamoTable("bench-quarantine", client)),
            cache.invalidate,
            metrics,
            logging.getLogger("bench.ingest"),
        )
        cpu = time.process_time
        rates: list[float] = []
        breakdown = _breakdown(events, batches)
        for chunk in range(-1, ROUNDS):
            gc.collect()
            spent, records = 0.0, 0
            for index in range(BATCHES_PER_CHUNK):
                batch = batches[(chunk * BATCHES_PER_CHUNK + index) % len(batches)]
                for _ in range(calls_in[(chunk * BATCHES_PER_CHUNK + index) % len(batches)]):
                    replies.add_response("UpdateItem", {})
                started = cpu()
                result = pipeline.run(batch)
                metrics.flush()
                spent += cpu() - started
                records += len(batch["Records"])
                if result["batchItemFailures"]:
                    raise RuntimeError(f"ingest failed records: {result}")
            replies.assert_no_pending_responses()
            if chunk >= 0:
                rates.append(records / spent)
            names = metric_names(stream.getvalue())
            stream.seek(0)
            stream.truncate()
    return Figure(
        name="ingest_records_per_s",
        value=fixtures.median(rates),
        goal=THROUGHPUT_GOAL,
        unit="records/s (one core, CPU time)",
        samples=rates,
        higher_is_better=True,
        details={
            "what": "SQS records through IngestPipeline.run per process-CPU second (canned DynamoDB, real INCR)",
            "batch_size": size,
            "offers_per_record": sum(offers_in) / len(events),
            "cpu_us_per_record": 1e6 / fixtures.median(rates),
            "breakdown_us_per_record": breakdown,
            "metric_names": sorted(names),
        },
    )


def _recording_metrics() -> tuple[EmfMetrics, io.StringIO]:
    stream = io.StringIO()
    return EmfMetrics("TravelSearch", {"Domain": "flights", "service": "flights-ingest"}, stream), stream


def metric_names(emf_lines: str) -> set[str]:
    """Names of the metrics in EMF lines."""
    names: set[str] = set()
    for line in emf_lines.splitlines():
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
            names.update(metric["Name"] for metric in directive["Metrics"])
    return names


def _breakdown(events: list[dict[str, Any]], batches: list[dict[str, Any]]) -> dict[str, float]:
    """Where a record's CPU goes, step by step (without the stubbed writes, measured above)."""
    cpu = time.process_time
    bodies = [record["body"] for batch in batches for record in batch["Records"]]
    contracts = event_contracts()
    received = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = cpu()
    for body in bodies:
        orjson.loads(body)
    parsing = cpu() - started
    started = cpu()
    for event in events:
        contracts.problem(event)
    validating = cpu() - started
    started = cpu()
    for event in events:
        flight_upserts(event, "skylink", received)
    mapping = cpu() - started
    count = len(events)
    return {
        "json_loads": parsing / count * 1e6,
        "validation": validating / count * 1e6,
        "to_upserts": mapping / count * 1e6,
    }
