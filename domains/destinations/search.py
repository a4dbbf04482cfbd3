"""Destination autocomplete and lookup: cache-aside over the term and code items of the table.

Works on ports only (a destination source, a result cache), so unit tests use fakes.

Matching: an airport matches when every query word is a prefix of one of its searchable words
(city, name, code). Ranking, best first: a query word equal to the code; the city starting with
the query; every query word starting a word of the city; the major-airport rank; the shorter
name; the code.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any, Protocol

import orjson

from core.cache import Cached
from core.errors import NotFound
from domains.destinations.airports import Airport, code_scope, words
from domains.destinations.query import DestinationQuery

RankKey = tuple[bool, bool, bool, int, int, str]


class DestinationSource(Protocol):
    def candidates(self, prefix: str) -> list[Airport]:
        """Airports with a term starting with ``prefix`` (one key Query; an airport may repeat)."""
        ...

    def airport(self, code: str) -> Airport | None: ...


class ResultCache(Protocol):
    def get_or_build(self, scope: str, canonical_query: str, build: Callable[[], tuple[str, bool]]) -> Cached: ...


def matches(query_words: Iterable[str], airport_words: Iterable[str]) -> bool:
    """Every query word is a prefix of some word of the airport."""
    available = tuple(airport_words)
    return all(any(word.startswith(query_word) for word in available) for query_word in query_words)


def rank_key(query: DestinationQuery, airport: Airport, city_words: Sequence[str]) -> RankKey:
    """Sort key of a matching airport (smaller is better); ``city_words`` are the words of its city."""
    return (
        airport.code.lower() not in query.words,
        not " ".join(city_words).startswith(query.phrase),
        not matches(query.words, city_words),
        airport.rank,
        len(airport.name),
        airport.code,
    )


def best_matches(query: DestinationQuery, candidates: Iterable[Airport]) -> list[Airport]:
    """The ``query.limit`` best matching airports among ``candidates`` (repeats of a code are dropped)."""
    ranked: list[tuple[RankKey, Airport]] = []
    seen: set[str] = set()
    for airport in candidates:
        if airport.code in seen:
            continue
        seen.add(airport.code)
        city_words = words(airport.city)
        if matches(query.words, (*city_words, *words(airport.name), airport.code.lower())):
            ranked.append((rank_key(query, airport, city_words), airport))
    return [airport for _, airport in heapq.nsmallest(query.limit, ranked, key=itemgetter(0))]


def render_destination(airport: Airport) -> dict[str, Any]:
    return {
        "code": airport.code,
        "name": airport.name,
        "city": airport.city,
        "country": airport.country,
        "lat": airport.lat,
        "lon": airport.lon,
        "time_zone": airport.time_zone,
    }


class DestinationSearch:
    def __init__(self, source: DestinationSource, cache: ResultCache) -> None:
        self._source = source
        self._cache = cache

    def search(self, query: DestinationQuery) -> Cached:
        """The rendered autocomplete answer: from the cache, or from one term Query, ranked, and cached."""
        return self._cache.get_or_build(query.scope, query.canonical(), lambda: self.render_search(query))

    def lookup(self, code: str) -> Cached:
        """The rendered destination of an upper-case IATA code; :class:`NotFound` when there is none."""
        return self._cache.get_or_build(code_scope(code), f"destinations|code|{code}", lambda: self.render_lookup(code))

    def results(self, query: DestinationQuery) -> list[Airport]:
        return best_matches(query, self._source.candidates(query.anchor))

    def render_search(self, query: DestinationQuery) -> tuple[str, bool]:
        """(JSON body, empty) of an autocomplete answer, straight from the source."""
        found = self.results(query)
        body = {"results": [render_destination(airport) for airport in found], "count": len(found)}
        return orjson.dumps(body).decode(), not found

    def render_lookup(self, code: str) -> tuple[str, bool]:
        # An unknown code is not cached: the error propagates through the cache (which frees its lock).
        airport = self._source.airport(code)
        if airport is None:
            raise NotFound(f"no destination with code {code}")
        return orjson.dumps(render_destination(airport)).decode(), False
