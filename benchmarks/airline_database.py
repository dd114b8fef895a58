"""A fourth sample database for the SQL benchmark, written for kb's benchmarks (not a public dump): an
airline's airports, aircraft, pilots, flights, passengers and bookings. Its naming differs from the
university database's on purpose: plural tables, camelCase columns (``flightId``, ``originCode``),
a text primary key (an airport's three-letter code), and several foreign keys between the same two
tables (a flight's origin and destination airports, its captain and first officer). Its rows are
drawn from a seeded generator, so every run builds the same database.

It was made to give the text-to-SQL work a second ``dev`` set on a schema that none of kb's rules,
prompts or cue words had been written against (benchmarks/data/sql_airline.yaml). Its dev part has
since been studied and some of kb's SQL checks were written from its misses, so only its test part
(scored, never read) measures kb on data it was not tuned to. :func:`script` is the whole database
as one SQL script.
"""

from __future__ import annotations

import datetime as dt
import random

from sql_script import insert_statement

NAME = "airline"

SCHEMA = """
CREATE DATABASE IF NOT EXISTS airline;
USE airline;
DROP TABLE IF EXISTS bookings, passengers, flights, pilots, aircraft, airports;
CREATE TABLE airports (
  airportCode CHAR(3) PRIMARY KEY,
  airportName VARCHAR(60) NOT NULL,
  city VARCHAR(40) NOT NULL,
  country VARCHAR(40) NOT NULL
);
CREATE TABLE aircraft (
  aircraftId INT PRIMARY KEY,
  registration VARCHAR(10) NOT NULL UNIQUE,
  model VARCHAR(30) NOT NULL,
  seatCount SMALLINT NOT NULL,
  deliveredOn DATE NOT NULL
);
CREATE TABLE pilots (
  pilotId INT PRIMARY KEY,
  firstName VARCHAR(40) NOT NULL,
  lastName VARCHAR(40) NOT NULL,
  baseCode CHAR(3) NOT NULL,
  hireDate DATE NOT NULL,
  licenseLevel ENUM('first officer', 'captain', 'training captain') NOT NULL,
  FOREIGN KEY (baseCode) REFERENCES airports (airportCode)
);
CREATE TABLE flights (
  flightId INT PRIMARY KEY,
  flightNumber VARCHAR(8) NOT NULL,
  originCode CHAR(3) NOT NULL,
  destinationCode CHAR(3) NOT NULL,
  aircraftId INT NOT NULL,
  captainId INT NOT NULL,
  firstOfficerId INT NOT NULL,
  scheduledDeparture DATETIME NOT NULL,
  actualDeparture DATETIME NULL,
  distanceKm INT NOT NULL,
  status ENUM('scheduled', 'landed', 'cancelled', 'diverted') NOT NULL,
  FOREIGN KEY (originCode) REFERENCES airports (airportCode),
  FOREIGN KEY (destinationCode) REFERENCES airports (airportCode),
  FOREIGN KEY (aircraftId) REFERENCES aircraft (aircraftId),
  FOREIGN KEY (captainId) REFERENCES pilots (pilotId),
  FOREIGN KEY (firstOfficerId) REFERENCES pilots (pilotId)
);
CREATE TABLE passengers (
  passengerId INT PRIMARY KEY,
  firstName VARCHAR(40) NOT NULL,
  lastName VARCHAR(40) NOT NULL,
  email VARCHAR(80) NOT NULL UNIQUE,
  nationality VARCHAR(40) NOT NULL,
  loyaltyTier ENUM('none', 'silver', 'gold', 'platinum') NOT NULL,
  birthDate DATE NULL
);
CREATE TABLE bookings (
  bookingId INT PRIMARY KEY,
  passengerId INT NOT NULL,
  flightId INT NOT NULL,
  bookedAt DATETIME NOT NULL,
  fareClass ENUM('economy', 'premium', 'business') NOT NULL,
  price DECIMAL(8, 2) NOT NULL,
  seat VARCHAR(4) NULL,
  FOREIGN KEY (passengerId) REFERENCES passengers (passengerId),
  FOREIGN KEY (flightId) REFERENCES flights (flightId)
);
"""

AIRPORTS = [
    ("LIS", "Humberto Delgado", "Lisbon", "Portugal"),
    ("OPO", "Francisco Sa Carneiro", "Porto", "Portugal"),
    ("MAD", "Adolfo Suarez Barajas", "Madrid", "Spain"),
    ("BCN", "El Prat", "Barcelona", "Spain"),
    ("CDG", "Charles de Gaulle", "Paris", "France"),
    ("AMS", "Schiphol", "Amsterdam", "Netherlands"),
    ("FCO", "Fiumicino", "Rome", "Italy"),
    ("ATH", "Eleftherios Venizelos", "Athens", "Greece"),
    ("HEL", "Vantaa", "Helsinki", "Finland"),
    ("DUB", "Dublin", "Dublin", "Ireland"),
]
MODELS = [("A320neo", 180), ("A321neo", 220), ("E195-E2", 132), ("737 MAX 8", 178), ("ATR 72", 70)]
FIRST = ["Ana", "Joao", "Marta", "Pedro", "Ines", "Luca", "Sara", "Mikko", "Aoife", "Nikos", "Eva", "Hugo"]
LAST = ["Silva", "Costa", "Garcia", "Moreau", "Jansen", "Rossi", "Papadopoulos", "Virtanen", "Murphy", "Lopes"]
NATIONALITIES = ["Portugal", "Spain", "France", "Netherlands", "Italy", "Greece", "Finland", "Ireland", "Brazil"]
LICENSES = ["first officer", "captain", "training captain"]
TIERS = ["none", "none", "none", "silver", "silver", "gold", "platinum"]


def script(seed: int = 2026) -> str:
    """The database as one SQL script: schema, then every row (the same for the same ``seed``)."""
    rng = random.Random(seed)
    codes = [a[0] for a in AIRPORTS]
    aircraft = []
    for i in range(1, 19):
        model, seats = rng.choice(MODELS)
        delivered = dt.date(2012, 1, 1) + dt.timedelta(days=rng.randrange(0, 4700))
        aircraft.append((i, f"CS-T{chr(65 + i // 26)}{chr(65 + i % 26)}", model, seats, delivered.isoformat()))
    pilots = []
    for i in range(1, 41):
        hired = dt.date(2005, 1, 1) + dt.timedelta(days=rng.randrange(0, 7000))
        level = LICENSES[0] if i % 3 == 0 else rng.choice(LICENSES[1:]) if i % 3 == 1 else rng.choice(LICENSES)
        pilots.append((i, rng.choice(FIRST), rng.choice(LAST), rng.choice(codes[:6]), hired.isoformat(), level))
    captains = [p[0] for p in pilots if p[5] != "first officer"]
    officers = [p[0] for p in pilots if p[5] == "first officer"] + captains[:4]
    distances: dict[frozenset[str], int] = {}  # one distance per pair of airports, either way
    routes = [(o, d) for o in codes for d in codes if o != d and rng.random() < 0.35]
    flights = []
    start = dt.datetime(2025, 1, 1, 6, 0)
    for day in range(0, 365, 2):
        for origin, destination in rng.sample(routes, 4):
            distance = distances.setdefault(frozenset((origin, destination)), rng.randrange(3, 32) * 100)
            scheduled = start + dt.timedelta(days=day, minutes=30 * rng.randrange(0, 30))
            status = "landed" if day < 330 else "scheduled"
            if day < 330 and rng.random() < 0.05:
                status = rng.choice(["cancelled", "diverted"])
            actual = (
                None if status in ("scheduled", "cancelled") else scheduled + dt.timedelta(minutes=rng.randrange(0, 95))
            )
            captain = rng.choice(captains)
            officer = rng.choice([p for p in officers if p != captain])
            flights.append(
                (
                    len(flights) + 1,
                    f"KB{100 + codes.index(origin) * 10 + codes.index(destination)}",
                    origin,
                    destination,
                    rng.randrange(1, len(aircraft) + 1),
                    captain,
                    officer,
                    scheduled.isoformat(sep=" "),
                    actual.isoformat(sep=" ") if actual else None,
                    distance,
                    status,
                )
            )
    passengers = []
    for i in range(1, 501):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(0, 20000)) if rng.random() < 0.85 else None
        passengers.append(
            (
                i,
                first,
                last,
                f"{first.lower()}.{last.lower()}{i}@example.com",
                rng.choice(NATIONALITIES),
                rng.choice(TIERS),
                born.isoformat() if born else None,
            )
        )
    bookings = []
    for flight in flights:
        for passenger in rng.sample(passengers, rng.randrange(3, 12)):
            fare = rng.choice(["economy"] * 6 + ["premium"] * 2 + ["business"])
            base = {"economy": 60, "premium": 140, "business": 320}[fare] + flight[9] // 20
            booked = dt.datetime.fromisoformat(flight[7]) - dt.timedelta(
                days=rng.randrange(1, 120), minutes=rng.randrange(0, 1440)
            )
            seat = (
                None
                if flight[10] == "cancelled" or rng.random() < 0.1
                else f"{rng.randrange(1, 31)}{rng.choice('ABCDEF')}"
            )
            bookings.append(
                (
                    len(bookings) + 1,
                    passenger[0],
                    flight[0],
                    booked.isoformat(sep=" "),
                    fare,
                    float(base + rng.randrange(0, 90)),
                    seat,
                )
            )
    return (
        SCHEMA
        + insert_statement("airports", AIRPORTS)
        + insert_statement("aircraft", aircraft)
        + insert_statement("pilots", pilots)
        + insert_statement("flights", flights)
        + insert_statement("passengers", passengers)
        + insert_statement("bookings", bookings)
    )


if __name__ == "__main__":
    print(script())
