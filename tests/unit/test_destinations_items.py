"""The destinations table: item codec, terms, seed items, and the key reads of core.store (no socket)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from core.errors import ServiceUnavailable
from core.settings import SettingsError, settings_from_env
from core.store import DynamoTable
from domains.destinations.airports import (
    UNRANKED,
    Airport,
    airport_from_item,
    airport_items,
    code_item,
    invalidation_scopes,
    major_airport_ranks,
    term_items,
    terms,
)
from domains.destinations.bootstrap import DynamoDestinations
from local.seed_destinations import airports, destination_items

CDG = Airport(
    code="CDG",
    name="Charles de Gaulle International Airport",
    city="Paris",
    country="FR",
    lat=49.0128,
    lon=2.55,
    time_zone="Europe/Paris",
    icao="LFPG",
    subdivision="Ile-de-France",
    elevation_ft=392.0,
    rank=11,
    sequence=20260905,
    updated_at="2026-09-05T00:00:00Z",
)


def test_code_item_round_trip_keeps_every_field() -> None:
    item = code_item(CDG)
    assert (item["pk"], item["sk"]) == ({"S": "CODE#CDG"}, {"S": "AIRPORT"})
    assert airport_from_item(item) == CDG


def test_term_items_carry_what_a_result_needs_under_each_term() -> None:
    items = term_items(CDG)
    assert [(item["pk"]["S"], item["sk"]["S"]) for item in items] == [
        ("PREFIX#pa", "paris#CDG"),
        ("PREFIX#ch", "charles#CDG"),
        ("PREFIX#de", "de#CDG"),
        ("PREFIX#ga", "gaulle#CDG"),
        ("PREFIX#in", "international#CDG"),
        ("PREFIX#cd", "cdg#CDG"),
    ]
    decoded = {airport_from_item(item) for item in items}
    assert decoded == {replace(CDG, icao="", subdivision="", elevation_ft=0.0)}
    assert all(item["updated_at"] == {"S": "2026-09-05T00:00:00Z"} for item in items)
    assert all(item["sequence"] == {"N": "20260905"} and item["rank"] == {"N": "11"} for item in items)


def test_terms_are_distinct_words_without_noise_or_single_letters_and_always_the_code() -> None:
    jfk = replace(CDG, code="JFK", name="John F Kennedy International Airport", city="New York")
    assert terms(jfk) == ["new", "york", "john", "kennedy", "international", "jfk"]
    zurich = replace(CDG, code="ZRH", name="Zürich Airport", city="Zurich")
    assert terms(zurich) == ["zurich", "zrh"]
    no_city = replace(CDG, code="AIR", name="Airport", city="")
    assert terms(no_city) == ["air"]


def test_numbers_are_written_in_plain_decimal_notation() -> None:
    tiny = replace(CDG, lat=0.00001, lon=-1e-06)
    item = code_item(tiny)
    assert (item["lat"], item["lon"]) == ({"N": "0.00001"}, {"N": "-0.000001"})
    assert airport_from_item(item) == tiny


def test_changing_an_airport_invalidates_the_scopes_of_its_terms_and_its_code() -> None:
    assert invalidation_scopes(CDG) == {"pa", "ch", "de", "ga", "in", "cd", "code:CDG"}


def test_every_major_airport_code_is_a_real_airport_listed_once() -> None:
    ranks = major_airport_ranks()
    known = {airport.code for airport in airports()}
    assert 140 <= len(ranks) <= 170
    assert set(ranks) <= known
    assert sorted(ranks.values()) == list(range(1, len(ranks) + 1))
    assert ranks["ATL"] == 1 and ranks["CDG"] < ranks["ORY"] < UNRANKED


def test_seed_keeps_only_complete_airports_with_their_rank() -> None:
    seeded = airports()
    assert len(seeded) > 7000
    assert len({airport.code for airport in seeded}) == len(seeded)
    for airport in seeded:
        assert len(airport.code) == 3 and airport.code.isascii() and airport.code.isupper()
        assert airport.name and airport.country and airport.time_zone
        assert -90 <= airport.lat <= 90 and -180 <= airport.lon <= 180
        assert airport.sequence > 0 and airport.updated_at
    by_code = {airport.code: airport for airport in seeded}
    assert by_code["CDG"].rank == major_airport_ranks()["CDG"] and by_code["PMF"].rank == UNRANKED


def test_seed_items_have_unique_keys_and_small_partitions() -> None:
    seeded = airports()
    items = list(destination_items(seeded))
    assert len(items) == sum(len(airport_items(airport)) for airport in seeded)
    assert len(items) < 5 * len(seeded)  # few items: the emulator pays per write
    keys = Counter((item["pk"]["S"], item["sk"]["S"]) for item in items)
    assert keys.most_common(1)[0][1] == 1
    assert all("updated_at" in item and "sequence" in item for item in items)
    partition_sizes = Counter(item["pk"]["S"] for item in items)
    assert max(partition_sizes.values()) < 1500  # the largest prefix ("in…") still answers in one page


@pytest.fixture
def dynamodb() -> Iterator[tuple[Any, Stubber]]:
    client = botocore.session.get_session().create_client(
        "dynamodb", region_name="eu-west-1", aws_access_key_id="unit", aws_secret_access_key="unit"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


GET_CDG = {"TableName": "destinations", "Key": {"pk": {"S": "CODE#CDG"}, "sk": {"S": "AIRPORT"}}}


def test_lookup_is_one_get_item_on_the_code_item(dynamodb: tuple[Any, Stubber]) -> None:
    client, stubber = dynamodb
    stubber.add_response("get_item", {"Item": code_item(CDG)}, GET_CDG)
    stubber.add_response("get_item", {}, {**GET_CDG, "Key": {"pk": {"S": "CODE#QQQ"}, "sk": {"S": "AIRPORT"}}})
    source = DynamoDestinations(DynamoTable("destinations", client))
    assert source.airport("CDG") == CDG
    assert source.airport("QQQ") is None


def test_search_read_is_one_prefix_query_on_the_term_partition(dynamodb: tuple[Any, Stubber]) -> None:
    client, stubber = dynamodb
    expected = {
        "TableName": "destinations",
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": "PREFIX#pa"}, ":prefix": {"S": "paris"}},
    }
    stubber.add_response("query", {"Items": term_items(CDG)[:1]}, expected)
    assert DynamoDestinations(DynamoTable("destinations", client)).candidates("paris") == [
        replace(CDG, icao="", subdivision="", elevation_ft=0.0)
    ]


def test_throttled_get_item_becomes_service_unavailable(dynamodb: tuple[Any, Stubber]) -> None:
    client, stubber = dynamodb
    stubber.add_client_error("get_item", "ProvisionedThroughputExceededException", http_status_code=400)
    with pytest.raises(ServiceUnavailable):
        DynamoTable("destinations", client).get_item("CODE#CDG", "AIRPORT")


def test_settings_name_the_missing_table_variable_and_need_no_page_token_secret() -> None:
    with pytest.raises(SettingsError, match="DESTINATIONS_TABLE"):
        settings_from_env("DESTINATIONS_TABLE", {"CACHE_HOST": "localhost"}, page_tokens=False)
    environ = {"DESTINATIONS_TABLE": "Destinations", "CACHE_HOST": "localhost"}
    settings = settings_from_env("DESTINATIONS_TABLE", environ, page_tokens=False)
    assert (settings.table_name, settings.cache.host, settings.page_token_secret) == ("Destinations", "localhost", b"")
