"""Deterministic seed data for the local stack: nightly hotel rates in 25 big cities.

Pure: no AWS calls. The local stack's seeding writes these through ``BatchWriteItem`` with
:func:`domains.hotels.rates.rate_to_item`.

Same seed + same ``today`` → same rates. Each city draws from its own random stream, so a city's
rates do not depend on which other cities are generated, and the first nights do not depend on
``days``. Nights run from ``today`` to ``today + days - 1``. Prices follow the stars, the city and
the weekend (Friday and Saturday nights cost more); about one night in ten is sold out.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from domains.hotels.rates import NightlyRate
from domains.hotels.search import bookable_stays

DEFAULT_SEED = 20260101
DAYS = 60
CURRENCY = "USD"  # one currency everywhere, like the flight seed, so max_price means the same in every city
PROVIDERS = ("staylink", "roomgrid")
UNAVAILABLE_SHARE = 0.10
STAR_WEIGHTS = {2: 2, 3: 4, 4: 4, 5: 2}
NIGHTLY_USD_BY_STARS = {2: 65, 3: 105, 4: 175, 5: 330}
WEEKEND_NIGHTS = (4, 5)  # Friday and Saturday
WEEKEND_MARKUP = 1.18


@dataclass(frozen=True, slots=True)
class City:
    name: str
    price_level: float  # over the average big city
    districts: tuple[str, ...]


# IATA metropolitan (city) codes where one exists (PAR, LON, NYC, ROM, TYO, CHI, YTO), otherwise
# the main airport's code, which IATA also uses for the city. Toronto is YTO: TOR is Torrington, WY.
CITIES: dict[str, City] = {
    "PAR": City("Paris", 1.25, ("Marais", "Montmartre", "Saint-Germain", "Opera", "Bastille")),
    "LON": City("London", 1.35, ("Covent Garden", "Kensington", "Soho", "Mayfair", "Shoreditch")),
    "NYC": City("New York", 1.45, ("Midtown", "SoHo", "Chelsea", "Tribeca", "Upper West Side")),
    "ROM": City("Rome", 1.05, ("Trastevere", "Monti", "Prati", "Navona", "Spagna")),
    "BCN": City("Barcelona", 1.0, ("Eixample", "Gracia", "El Born", "Barceloneta", "Gothic Quarter")),
    "BER": City("Berlin", 0.9, ("Mitte", "Kreuzberg", "Charlottenburg", "Prenzlauer Berg", "Friedrichshain")),
    "AMS": City("Amsterdam", 1.2, ("Jordaan", "De Pijp", "Canal Ring", "Oud-West", "Museum Quarter")),
    "MAD": City("Madrid", 0.95, ("Salamanca", "Chueca", "Malasana", "Retiro", "La Latina")),
    "TYO": City("Tokyo", 1.1, ("Shinjuku", "Shibuya", "Ginza", "Asakusa", "Roppongi")),
    "SIN": City("Singapore", 1.2, ("Marina Bay", "Orchard", "Chinatown", "Bugis", "Sentosa")),
    "DXB": City("Dubai", 1.1, ("Downtown", "Dubai Marina", "Deira", "Jumeirah", "Business Bay")),
    "BKK": City("Bangkok", 0.55, ("Sukhumvit", "Silom", "Riverside", "Siam", "Khao San")),
    "HKG": City("Hong Kong", 1.15, ("Central", "Tsim Sha Tsui", "Wan Chai", "Causeway Bay", "Mong Kok")),
    "SYD": City("Sydney", 1.1, ("Circular Quay", "Darling Harbour", "Surry Hills", "Bondi", "The Rocks")),
    "LAX": City("Los Angeles", 1.15, ("Hollywood", "Santa Monica", "Downtown", "Beverly Hills", "Venice")),
    "SFO": City("San Francisco", 1.3, ("Union Square", "Nob Hill", "Embarcadero", "SoMa", "Mission")),
    "CHI": City("Chicago", 1.0, ("The Loop", "River North", "Magnificent Mile", "Lincoln Park", "West Loop")),
    "MIA": City("Miami", 1.1, ("South Beach", "Brickell", "Wynwood", "Coconut Grove", "Little Havana")),
    "YTO": City("Toronto", 0.95, ("Yorkville", "Distillery", "Entertainment District", "Harbourfront", "Queen West")),
    "MEX": City("Mexico City", 0.6, ("Polanco", "Roma", "Condesa", "Centro Historico", "Coyoacan")),
    "IST": City("Istanbul", 0.65, ("Sultanahmet", "Beyoglu", "Karakoy", "Besiktas", "Kadikoy")),
    "LIS": City("Lisbon", 0.85, ("Baixa", "Alfama", "Chiado", "Bairro Alto", "Belem")),
    "VIE": City("Vienna", 0.95, ("Innere Stadt", "Leopoldstadt", "Neubau", "Wieden", "Mariahilf")),
    "PRG": City("Prague", 0.7, ("Old Town", "Mala Strana", "Vinohrady", "Zizkov", "New Town")),
    "DUB": City("Dublin", 1.1, ("Temple Bar", "Ballsbridge", "Docklands", "St Stephen's Green", "Smithfield")),
}
CITY_CODES = tuple(CITIES)

# Name patterns per star tier: {d} is a district, {c} the city's name.
NAME_PATTERNS = {
    2: ("{d} Budget Inn", "Easy Stay {d}", "{c} Hostel & Rooms", "{d} Lodge"),
    3: ("{d} Garden Hotel", "Hotel {d}", "City Inn {d}", "{d} Boutique Hotel"),
    4: ("{d} Park Hotel", "Hotel {d} Plaza", "The {d} Residence", "{c} Central Suites"),
    5: ("Grand Hotel {d}", "The {d} Palace", "{c} Imperial", "Royal {d} Hotel"),
}
RATING_RANGE_BY_STARS = {2: (6.0, 8.2), 3: (6.6, 8.9), 4: (7.4, 9.4), 5: (8.2, 9.8)}


@dataclass(frozen=True, slots=True)
class Hotel:
    hotel_id: str
    name: str
    stars: int
    rating: Decimal
    nightly_usd: float
    max_guests: int
    provider: str


def city_hotels(code: str, city: City, rng: random.Random) -> list[Hotel]:
    """8–15 hotels with distinct names; the better the stars, the dearer and the better rated."""
    stars_options, weights = zip(*STAR_WEIGHTS.items(), strict=True)
    hotels: list[Hotel] = []
    names: set[str] = set()
    for number in range(1, rng.randint(8, 15) + 1):
        stars = rng.choices(stars_options, weights)[0]
        name = ""
        for _ in range(10):  # redraw a taken name; a city has 16–20 names per tier
            name = rng.choice(NAME_PATTERNS[stars]).format(d=rng.choice(city.districts), c=city.name)
            if name not in names:
                break
        if name in names:
            name = f"{name} {number}"
        names.add(name)
        low, high = RATING_RANGE_BY_STARS[stars]
        hotels.append(
            Hotel(
                hotel_id=f"{code}-{number:03d}",
                name=name,
                stars=stars,
                rating=Decimal(f"{rng.uniform(low, high):.1f}"),
                nightly_usd=NIGHTLY_USD_BY_STARS[stars] * city.price_level * rng.uniform(0.85, 1.2),
                max_guests=rng.randint(2, 4),
                provider=rng.choice(PROVIDERS),
            )
        )
    return hotels


def hotel_rates(
    today: date, days: int = DAYS, cities: tuple[str, ...] = CITY_CODES, *, seed: int = DEFAULT_SEED
) -> Iterator[NightlyRate]:
    """Every hotel's rate for each of the ``days`` nights from ``today``, city by city, night by night."""
    updated_at = f"{today.isoformat()}T00:00:00Z"
    for code in cities:
        city = CITIES[code]
        rng = random.Random(f"{seed}:{code}")  # a string seed is hashed with SHA-512: stable across runs
        hotels = city_hotels(code, city, rng)
        for offset in range(days):
            night = today + timedelta(days=offset)
            weekend = WEEKEND_MARKUP if night.weekday() in WEEKEND_NIGHTS else 1.0
            for hotel in hotels:
                amount = hotel.nightly_usd * weekend * rng.uniform(0.95, 1.08)
                yield NightlyRate(
                    hotel_id=hotel.hotel_id,
                    name=hotel.name,
                    city=code,
                    stars=hotel.stars,
                    rating=hotel.rating,
                    date=night.isoformat(),
                    amount=Decimal(f"{amount:.2f}"),
                    currency=CURRENCY,
                    available=rng.random() >= UNAVAILABLE_SHARE,
                    max_guests=hotel.max_guests,
                    provider=hotel.provider,
                    sequence=1,
                    updated_at=updated_at,
                )


def hotel_example(today: date, days: int = DAYS, *, seed: int = DEFAULT_SEED) -> dict[str, str]:
    """Three nights in Paris for two, about two weeks out, on dates with at least three bookable hotels."""
    city, nights, guests = "PAR", 3, 2
    rates = list(hotel_rates(today, days, (city,), seed=seed))
    last_start = max(days - nights, 0)
    preferred = min(14, last_start)
    for start in [*range(preferred, last_start + 1), *range(0, preferred)]:
        check_in = today + timedelta(days=start)
        stay = [(check_in + timedelta(days=n)).isoformat() for n in range(nights)]
        if len(bookable_stays(rates, stay, guests)) >= 3:
            break
    else:
        check_in = today + timedelta(days=preferred)  # not reached with the default seed and days
    return {
        "city": city,
        "check_in": check_in.isoformat(),
        "check_out": (check_in + timedelta(days=nights)).isoformat(),
        "guests": str(guests),
    }
