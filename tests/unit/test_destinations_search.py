"""Destination autocomplete and lookup over the real airportsdata set, through a key-only fake table.

The fake answers only ``pk`` + ``begins_with(sk)`` Queries and GetItem, as the table is meant to
be read; a search that needed a Scan could not find anything through it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import orjson
import pytest

from core.errors import NotFound
from core.store import Item
from domains.destinations.airports import Airport, invalidation_scopes, terms, words
from domains.destinations.bootstrap import DynamoDestinations
from domains.destinations.query import DestinationQuery, parse_destination_query
from domains.destinations.search import DestinationSearch
from local.seed_destinations import airports, destination_items
from tests.fakes import DictCache


class KeyOnlyTable:
    """In-memory items answering the two key reads of core.store.DynamoTable, and nothing else."""

    def __init__(self, items: Iterable[Item]) -> None:
        self._partitions: dict[str, dict[str, Item]] = defaultdict(dict)
        for item in items:
            partition, sort = item["pk"]["S"], item["sk"]["S"]
            assert sort not in self._partitions[partition], f"duplicate key {partition} / {sort}"
            self._partitions[partition][sort] = item
        self.reads: list[tuple[str, str]] = []

    def fresh(self) -> KeyOnlyTable:
        """The same items, no reads recorded yet."""
        table = KeyOnlyTable(())
        table._partitions = self._partitions
        return table

    def query_prefix(self, partition: str, sort_prefix: str) -> list[Item]:
        self.reads.append((partition, sort_prefix))
        found = self._partitions.get(partition, {})
        return [found[sort] for sort in sorted(found) if sort.startswith(sort_prefix)]

    def get_item(self, partition: str, sort: str) -> Item | None:
        self.reads.append((partition, sort))
        return self._partitions.get(partition, {}).get(sort)


@lru_cache(maxsize=1)
def every_airport() -> tuple[Airport, ...]:
    return tuple(airports())


@lru_cache(maxsize=1)
def seeded_table() -> KeyOnlyTable:
    return KeyOnlyTable(destination_items(every_airport()))


def service(cache: DictCache | None = None) -> tuple[DestinationSearch, KeyOnlyTable]:
    table = seeded_table().fresh()
    return DestinationSearch(DynamoDestinations(table), cache or DictCache()), table


def search(q: str, limit: int = 20) -> list[dict[str, Any]]:
    body = orjson.loads(service()[0].search(parse_destination_query({"q": q, "limit": str(limit)})).body)
    assert body["count"] == len(body["results"])
    return body["results"]  # type: ignore[no-any-return]


def codes(q: str, limit: int = 20) -> list[str]:
    return [result["code"] for result in search(q, limit)]


def brute_force(q: str, limit: int) -> list[str]:
    """The ranking the brief defines, over every airport, written out independently of the index."""
    query = words(q)
    phrase = " ".join(query)

    def starts_some(targets: list[str]) -> bool:
        return all(any(word.startswith(query_word) for word in targets) for query_word in query)

    ranked = []
    for airport in every_airport():
        city = words(airport.city)
        if starts_some([*city, *words(airport.name), airport.code.lower()]):
            exact_code = airport.code.lower() in query
            key = (not exact_code, not " ".join(city).startswith(phrase), not starts_some(city))
            ranked.append((*key, airport.rank, len(airport.name), airport.code))
    return [row[-1] for row in sorted(ranked)[:limit]]


def test_par_ranks_both_paris_airports_before_smaller_matches() -> None:
    found = codes("par")
    assert found[:2] == ["CDG", "ORY"]
    assert {"PMF", "PBH"} <= set(found[2:])  # Parma, Paro: found, but after Paris


def test_exact_code_comes_first() -> None:
    assert codes("jfk")[0] == "JFK"
    assert codes("MAN")[:2] == ["MAN", "MNL"]  # Manchester's code before Manila, a bigger city prefix


@pytest.mark.parametrize(
    ("q", "expected"),
    [("sao paulo", "GRU"), ("SAO", "GRU"), ("São Paulo", "GRU"), ("zur", "ZRH"), ("ZÜRICH", "ZRH"), ("zürich", "ZRH")],
)
def test_case_and_accents_do_not_matter(q: str, expected: str) -> None:
    assert codes(q)[0] == expected


@pytest.mark.parametrize(
    ("q", "expected"),
    [("heathrow", "LHR"), ("orly", "ORY"), ("kennedy", "JFK"), ("o'hare", "ORD"), ("gaulle", "CDG")],
)
def test_any_word_of_the_airport_name_finds_it(q: str, expected: str) -> None:
    assert codes(q)[0] == expected


def test_multi_word_queries_need_every_word() -> None:
    assert codes("new york")[:2] == ["JFK", "LGA"]
    assert "EWR" not in codes("new york")  # Newark: "york" is no word of it
    assert codes("de gaulle") == ["CDG"]
    assert codes("paris orly") == ["ORY"]
    assert codes("heathrow airport") == ["LHR"]  # a noise word still filters
    assert codes("john f kennedy") == ["JFK", "ASX"]  # John F Kennedy Memorial, Ashland
    assert codes("john x kennedy") == []  # single letters filter too
    assert codes("paris zurich") == []


def test_limit_caps_the_results_and_keeps_the_order() -> None:
    assert codes("lon", limit=3) == codes("lon")[:3] == ["LHR", "LGW", "STN"]
    assert len(codes("sa", limit=20)) == 20
    assert len(codes("sa", limit=1)) == 1


@pytest.mark.parametrize(
    "q",
    ["par", "jfk", "sao paulo", "zur", "lon", "new york", "heathrow", "int", "de gaulle", "o'hare", "st. john's",
     "san fran", "ma", "Zürich", "a paris", "santa cruz", "new", "mun", "tok", "ber"],
)  # fmt: skip
def test_key_only_search_equals_brute_force_ranking_over_all_airports(q: str) -> None:
    expected = brute_force(q, 20)
    assert expected, "a query with no result would compare nothing"
    assert codes(q, 20) == expected


def test_a_search_is_one_query_on_one_term_partition() -> None:
    searcher, table = service()
    searcher.search(parse_destination_query({"q": "de gaulle"}))
    assert table.reads == [("PREFIX#ga", "gaulle")]


def test_noise_word_alone_finds_only_airports_with_another_word_like_it() -> None:
    found = search("air")
    by_code = {airport.code: airport for airport in every_airport()}
    assert found, "airports with other words starting 'air' exist (Buenos Aires, Air Force bases …)"
    assert all(any(term.startswith("air") for term in terms(by_code[result["code"]])) for result in found)
    assert "ATL" not in [result["code"] for result in found]  # not every airport merely for "Airport"


def test_result_has_the_documented_shape() -> None:
    assert search("zur", limit=1) == [
        {
            "code": "ZRH",
            "name": "Zurich Airport",
            "city": "Zurich",
            "country": "CH",
            "lat": 47.4647,
            "lon": 8.54917,
            "time_zone": "Europe/Zurich",
        }
    ]


def test_no_match_is_an_empty_result_flagged_for_short_caching() -> None:
    body, empty = service()[0].render_search(DestinationQuery(("qqzz",)))
    assert empty and orjson.loads(body) == {"results": [], "count": 0}


def test_second_identical_search_is_served_from_the_cache_under_the_prefix_scope() -> None:
    cache = DictCache()
    searcher, table = service(cache)
    first = searcher.search(parse_destination_query({"q": "Paris"}))
    second = searcher.search(parse_destination_query({"q": "paris "}))
    assert (first.status, second.status, len(table.reads)) == ("MISS", "HIT", 1)
    assert [scope for scope, _ in cache.bodies] == ["pa"]


@pytest.mark.parametrize("q", ["par", "new york", "heathrow", "sao paulo", "int", "air", "kennedy"])
def test_every_result_can_be_invalidated_through_its_search_scope(q: str) -> None:
    query = parse_destination_query({"q": q})
    searcher, _ = service()
    by_code = {airport.code: airport for airport in every_airport()}
    for airport in searcher.results(query):
        assert query.scope in invalidation_scopes(by_code[airport.code]), airport.code


def test_lookup_returns_one_destination_and_accepts_lower_case() -> None:
    cache = DictCache()
    searcher, table = service(cache)
    found = orjson.loads(searcher.lookup("CDG").body)
    assert found == {
        "code": "CDG",
        "name": "Charles de Gaulle International Airport",
        "city": "Paris",
        "country": "FR",
        "lat": 49.0128,
        "lon": 2.55,
        "time_zone": "Europe/Paris",
    }
    assert table.reads == [("CODE#CDG", "AIRPORT")]
    assert searcher.lookup("CDG").status == "HIT"
    assert list(cache.bodies) == [("code:CDG", "destinations|code|CDG")]


def test_lookup_of_an_unknown_code_is_not_found_and_not_cached() -> None:
    cache = DictCache()
    searcher, table = service(cache)
    for _ in range(2):
        with pytest.raises(NotFound):
            searcher.lookup("QQQ")
    assert len(table.reads) == 2 and not cache.bodies
