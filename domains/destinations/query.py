"""Parse and validate destination requests: the autocomplete query and the code of a lookup."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from core import params as p
from core.errors import InvalidParameter
from domains.destinations.airports import MIN_TERM_LENGTH, NOISE_WORDS, search_scope, words

SEARCH_PARAMETERS = frozenset({"q", "limit"})
LOOKUP_PARAMETERS: frozenset[str] = frozenset()
MIN_LENGTH, MAX_LENGTH = 2, 50
DEFAULT_LIMIT, MAX_LIMIT = 10, 20

_PUNCTUATION = frozenset(" -.'’")  # ’: phone keyboards type it for an apostrophe
_IATA = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class DestinationQuery:
    words: tuple[str, ...]  # normalised, in the order typed; at least one has two or more letters
    limit: int = DEFAULT_LIMIT

    @property
    def anchor(self) -> str:
        """The word whose term partition the search reads.

        Every matching airport has a term starting with it, so one Query finds them all: the
        longest word that cannot be the start of a noise word (which is not indexed) is chosen;
        only when there is none (``"air"``) does a word that might be.
        """
        usable = [word for word in self.words if len(word) >= MIN_TERM_LENGTH]
        if not usable:
            raise ValueError("a destination query needs a word of at least two letters")
        distinctive = [word for word in usable if not any(noise.startswith(word) for noise in NOISE_WORDS)]
        return max(distinctive or usable, key=len)  # max keeps the first of equally long words

    @property
    def phrase(self) -> str:
        return " ".join(self.words)

    @property
    def scope(self) -> str:
        """The cache scope: the term partition read, so a change of an airport can invalidate it."""
        return search_scope(self.anchor)

    def canonical(self) -> str:
        """One string per distinct result: the input of the cache key."""
        return f"destinations|search|{self.phrase}|{self.limit}"


def search_text(params: Mapping[str, str], name: str) -> str:
    """``q``: 2–50 characters after trimming spaces; letters, digits, space, hyphen, apostrophe, period."""
    value = p.text(params, name)
    if value is None:
        raise InvalidParameter(name, f"is required ({MIN_LENGTH} to {MAX_LENGTH} characters)")
    # NFC first, so a letter typed as letter + combining accent counts as the one letter it is.
    value = unicodedata.normalize("NFC", value).strip(" ")
    if not MIN_LENGTH <= len(value) <= MAX_LENGTH:
        raise InvalidParameter(name, f"must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
    if not all(char.isalpha() or char.isdecimal() or char in _PUNCTUATION for char in value):
        raise InvalidParameter(name, "may contain only letters, digits, spaces, hyphens, apostrophes and periods")
    return value


def parse_destination_query(params: Mapping[str, str]) -> DestinationQuery:
    """A validated autocomplete query; :class:`InvalidParameter` naming the first bad parameter otherwise."""
    p.reject_unknown(params, SEARCH_PARAMETERS)
    found = tuple(words(search_text(params, "q")))
    if not any(len(word) >= MIN_TERM_LENGTH for word in found):
        raise InvalidParameter("q", "must contain a word of at least two letters or digits")
    return DestinationQuery(found, p.whole_number(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT))


def parse_code(path: Mapping[str, str], params: Mapping[str, str]) -> str:
    """The upper-case IATA code of ``/v1/destinations/{code}``; the lookup takes no query parameters."""
    p.reject_unknown(params, LOOKUP_PARAMETERS)
    value = path.get("code") or ""
    code = value.upper() if value.isascii() else ""
    if not _IATA.fullmatch(code):
        raise InvalidParameter("code", "must be a 3-letter IATA airport code such as CDG")
    return code
