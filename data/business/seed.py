"""Rows for Nordbrew's business database: deterministic (fixed seed), two years of activity.

``rows()`` returns {table: (columns, rows)}; the products are the ones the guides in data/docs
describe, and the returns respect (or, for some refused ones, break) the 30-day window of the
return policy, so that some questions need both the documents and the database.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

SEED = 20261122
START, END = date(2024, 11, 1), date(2026, 10, 31)
PRODUCTS = [
    (1, "NB-ESP-100", "Barista Pro", "espresso machine", 1299.00, 24),
    (2, "NB-ESP-050", "Barista Mini", "espresso machine", 549.00, 24),
    (3, "NB-GRD-200", "Grinder Duo", "grinder", 399.00, 24),
    (4, "NB-MLK-010", "Milk Frother X", "milk", 89.00, 12),
    (5, "NB-KTL-300", "Kettle Pour", "brewing", 129.00, 12),
    (6, "NB-CBT-400", "Cold Brew Tower", "brewing", 189.00, 12),
    (7, "NB-CON-001", "Descaler Pack", "consumable", 14.00, 0),
    (8, "NB-SUB-001", "Bean Subscription", "consumable", 29.00, 0),
]
CITIES = [
    ("Tampere", "FI"),
    ("Helsinki", "FI"),
    ("Turku", "FI"),
    ("Oulu", "FI"),
    ("Stockholm", "SE"),
    ("Gothenburg", "SE"),
    ("Tallinn", "EE"),
    ("Tartu", "EE"),
    ("Berlin", "DE"),
    ("Hamburg", "DE"),
    ("Copenhagen", "DK"),
    ("Amsterdam", "NL"),
]
FIRST = [
    "Aino",
    "Eero",
    "Liisa",
    "Mikko",
    "Sanna",
    "Juha",
    "Elsa",
    "Oskar",
    "Maja",
    "Lukas",
    "Anna",
    "Karl",
    "Freja",
    "Emil",
    "Laura",
    "Jonas",
    "Ida",
    "Noah",
    "Mia",
    "Leo",
]
LAST = [
    "Virtanen",
    "Korhonen",
    "Nieminen",
    "Andersson",
    "Johansson",
    "Tamm",
    "Saar",
    "Schmidt",
    "Jensen",
    "de Vries",
    "Laine",
    "Heikkinen",
    "Lindberg",
    "Kask",
    "Weber",
]
SUBJECTS = {
    1: ["Error E3 on steam boiler", "Low pressure", "Group head leaking", "Descaling question"],
    2: ["Drip tray float stuck", "Machine does not heat", "Portafilter size question"],
    3: ["Grind too coarse", "Burr replacement", "Motor noise"],
    4: ["Whisk does not spin", "Foam too thin"],
    5: ["Temperature wrong", "Lid loose"],
    6: ["Drip rate too fast", "Cracked glass"],
    7: ["Descaler for Barista Mini?"],
    8: ["Pause subscription", "Change delivery address"],
}


def _day(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def rows() -> dict[str, tuple[list[str], list[tuple]]]:
    rng = random.Random(SEED)
    customers = []
    for cid in range(1, 401):
        city, country = rng.choice(CITIES)
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"{name.lower().replace(' ', '.')}.{cid}@example.com"
        segment = "business" if rng.random() < 0.15 else "consumer"
        customers.append((cid, name, email, city, country, segment, _day(rng, START - timedelta(days=200), END)))

    orders, items, returns, tickets = [], [], [], []
    item_id = return_id = ticket_id = 0
    for oid in range(1, 1801):
        customer = rng.choice(customers)
        ordered = _day(rng, max(START, customer[6]), END)
        roll = rng.random()
        arrival = ordered + timedelta(days=rng.randint(2, 7))
        delivered: date | None = arrival
        if roll < 0.03:
            status, delivered = "cancelled", None
        elif arrival > END:
            status, delivered = "shipped", None
        else:
            status = "delivered"
        lines = []
        for product in rng.sample(PRODUCTS, k=rng.choices([1, 2, 3], weights=[65, 27, 8])[0]):
            quantity = 1 if product[3] != "consumable" else rng.randint(1, 4)
            item_id += 1
            lines.append((item_id, oid, product[0], quantity, product[4]))
        total = round(sum(q * p for _, _, _, q, p in lines), 2)
        orders.append((oid, customer[0], ordered, delivered, status, total))
        items.extend(lines)
        if delivered and rng.random() < 0.09:
            line = rng.choice(lines)
            late = rng.random() < 0.2  # some customers ask after the 30-day window
            requested = delivered + timedelta(days=rng.randint(31, 75) if late else rng.randint(1, 30))
            reason = rng.choices(
                ["faulty", "wrong item", "changed mind", "damaged in transit", "other"], weights=[35, 10, 35, 12, 8]
            )[0]
            if late:
                status_r = "approved" if reason == "faulty" else "refused"  # faulty: a warranty claim
            else:
                status_r = rng.choice(["refunded", "refunded", "refunded", "approved", "requested"])
            refund = round(line[3] * line[4], 2) if status_r in ("refunded", "approved") else 0.0
            return_id += 1
            returns.append((return_id, oid, line[2], requested, reason, status_r, refund))
    for _ in range(650):
        ticket_id += 1
        customer = rng.choice(customers)
        product = rng.choice(PRODUCTS)
        opened = datetime.combine(_day(rng, START, END), datetime.min.time()) + timedelta(
            minutes=rng.randint(480, 1080)
        )
        priority = rng.choices(["low", "normal", "high", "urgent"], weights=[20, 50, 25, 5])[0]
        closed = opened + timedelta(hours=rng.randint(1, 400)) if rng.random() < 0.85 else None
        status = "closed" if closed else rng.choice(["open", "pending"])
        tickets.append(
            (ticket_id, customer[0], product[0], opened, closed, priority, status, rng.choice(SUBJECTS[product[0]]))
        )
    return {
        "customers": (["id", "name", "email", "city", "country", "segment", "created_at"], customers),
        "products": (["id", "sku", "name", "category", "price", "warranty_months"], PRODUCTS),
        "orders": (["id", "customer_id", "ordered_at", "delivered_at", "status", "total"], orders),
        "order_items": (["id", "order_id", "product_id", "quantity", "unit_price"], items),
        "returns": (["id", "order_id", "product_id", "requested_at", "reason", "status", "refund_amount"], returns),
        "support_tickets": (
            ["id", "customer_id", "product_id", "opened_at", "closed_at", "priority", "status", "subject"],
            tickets,
        ),
    }
