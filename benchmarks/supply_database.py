"""A held-out sample database for the SQL benchmark, written for kb's benchmarks (not a public dump):
a chain of hardware stores buying items from vendors. What the other sets lack, on purpose:

* every column carries its table's prefix (``st_name`` in ``store``, ``pl_qty`` in
  ``purchase_line``), so a column's name never repeats across tables and a reference's name is not
  its target's (``pl_it_id`` references ``item.it_id`` only through a composite key);
* composite primary keys (``item_vendor (iv_it_id, iv_vn_id)``, ``stock (sk_st_id, sk_it_id)``,
  ``purchase_line (pl_pu_id, pl_line_no)``, ``receipt (rc_pu_id, rc_line_no, rc_received_at)``) and
  composite foreign keys: a purchase line names the offer it was bought under by (item, vendor), and
  a receipt names the line it delivers by (purchase, line number). A join on half of either pairs a
  row with every offer of its item, or every line of its purchase;
* ``DATETIME`` columns with times of day (when stock was counted, when a delivery was received).

Its questions (benchmarks/data/sql_supply.yaml) are all ``test``: written on 2026-11-29, after the
checks and repairs they exercise had been written (so not held out from those rules, only from any
rule written later), and before kb or plain LlamaIndex answered any of them. No rule, prompt, cue
word or threshold may be written from them. Its rows are drawn from a seeded generator, so every run
builds the same database; :func:`script` is the whole database as one SQL script.
"""

from __future__ import annotations

import datetime as dt
import random

from sql_script import insert_statement

NAME = "supply"

SCHEMA = """
CREATE DATABASE IF NOT EXISTS supply;
USE supply;
DROP TABLE IF EXISTS receipt, purchase_line, purchase, stock, item_vendor, vendor, item, store, region;
CREATE TABLE region (
  rg_id INT PRIMARY KEY,
  rg_name VARCHAR(30) NOT NULL
);
CREATE TABLE store (
  st_id INT PRIMARY KEY,
  st_name VARCHAR(40) NOT NULL,
  st_city VARCHAR(30) NOT NULL,
  st_rg_id INT NOT NULL,
  st_opened_on DATE NOT NULL,
  FOREIGN KEY (st_rg_id) REFERENCES region (rg_id)
);
CREATE TABLE item (
  it_id INT PRIMARY KEY,
  it_name VARCHAR(50) NOT NULL,
  it_category VARCHAR(20) NOT NULL,
  it_list_price DECIMAL(8, 2) NOT NULL
);
CREATE TABLE vendor (
  vn_id INT PRIMARY KEY,
  vn_name VARCHAR(40) NOT NULL,
  vn_country VARCHAR(30) NOT NULL,
  vn_rating TINYINT NOT NULL COMMENT '1 (poor) to 5 (excellent)'
);
CREATE TABLE item_vendor (
  iv_it_id INT NOT NULL,
  iv_vn_id INT NOT NULL,
  iv_unit_cost DECIMAL(8, 2) NOT NULL COMMENT 'the vendor''s current price per unit',
  iv_lead_days INT NOT NULL COMMENT 'days from order to delivery the vendor promises',
  PRIMARY KEY (iv_it_id, iv_vn_id),
  FOREIGN KEY (iv_it_id) REFERENCES item (it_id),
  FOREIGN KEY (iv_vn_id) REFERENCES vendor (vn_id)
);
CREATE TABLE stock (
  sk_st_id INT NOT NULL,
  sk_it_id INT NOT NULL,
  sk_on_hand INT NOT NULL,
  sk_counted_at DATETIME NOT NULL,
  PRIMARY KEY (sk_st_id, sk_it_id),
  FOREIGN KEY (sk_st_id) REFERENCES store (st_id),
  FOREIGN KEY (sk_it_id) REFERENCES item (it_id)
);
CREATE TABLE purchase (
  pu_id INT PRIMARY KEY,
  pu_st_id INT NOT NULL,
  pu_ordered_on DATE NOT NULL,
  pu_status ENUM('open', 'received', 'cancelled') NOT NULL,
  FOREIGN KEY (pu_st_id) REFERENCES store (st_id)
);
CREATE TABLE purchase_line (
  pl_pu_id INT NOT NULL,
  pl_line_no INT NOT NULL,
  pl_it_id INT NOT NULL,
  pl_vn_id INT NOT NULL,
  pl_qty INT NOT NULL,
  pl_unit_cost DECIMAL(8, 2) NOT NULL COMMENT 'price per unit paid on this purchase',
  PRIMARY KEY (pl_pu_id, pl_line_no),
  FOREIGN KEY (pl_pu_id) REFERENCES purchase (pu_id),
  FOREIGN KEY (pl_it_id, pl_vn_id) REFERENCES item_vendor (iv_it_id, iv_vn_id)
);
CREATE TABLE receipt (
  rc_pu_id INT NOT NULL,
  rc_line_no INT NOT NULL,
  rc_received_at DATETIME NOT NULL,
  rc_qty INT NOT NULL COMMENT 'units delivered',
  rc_damaged INT NOT NULL COMMENT 'of those, units delivered damaged',
  PRIMARY KEY (rc_pu_id, rc_line_no, rc_received_at),
  FOREIGN KEY (rc_pu_id, rc_line_no) REFERENCES purchase_line (pl_pu_id, pl_line_no)
);
"""

REGIONS = [(1, "North"), (2, "South"), (3, "East"), (4, "West")]
STORES = [
    (1, "Oakham Central", "Oakham", 1, "2015-04-01"),
    (2, "Oakham Retail Park", "Oakham", 1, "2019-09-14"),
    (3, "Thornby", "Thornby", 1, "2017-03-11"),
    (4, "Lowbridge", "Lowbridge", 2, "2012-06-02"),
    (5, "Saltmarsh Quay", "Saltmarsh", 2, "2020-02-20"),
    (6, "Eastwick High Street", "Eastwick", 3, "2011-10-08"),
    (7, "Eastwick Depot", "Eastwick", 3, "2021-05-17"),
    (8, "Redfield", "Redfield", 3, "2016-08-30"),
    (9, "Westmoor", "Westmoor", 4, "2014-01-13"),
    (10, "Harrow Cross", "Harrow", 4, "2018-11-03"),
    (11, "Pinecliff", "Pinecliff", 4, "2022-03-26"),
]
ITEMS = [
    ("Claw Hammer", "tools", 18.50),
    ("Cordless Drill", "tools", 89.00),
    ("Spirit Level 60cm", "tools", 24.00),
    ("Hacksaw", "tools", 15.75),
    ("Screwdriver Set", "tools", 22.40),
    ("Tape Measure 8m", "tools", 9.90),
    ("Adjustable Wrench", "tools", 16.20),
    ("Utility Knife", "tools", 6.50),
    ("Garden Hose 25m", "garden", 34.00),
    ("Pruning Shears", "garden", 19.80),
    ("Leaf Rake", "garden", 14.50),
    ("Wheelbarrow", "garden", 79.00),
    ("Lawn Seed 2kg", "garden", 12.90),
    ("Watering Can", "garden", 8.75),
    ("Wall Paint White 5L", "paint", 42.00),
    ("Primer 2.5L", "paint", 21.50),
    ("Paint Roller Kit", "paint", 13.40),
    ("Masking Tape", "paint", 3.20),
    ("Wood Stain 1L", "paint", 17.60),
    ("LED Bulb E27", "electrical", 4.90),
    ("Extension Lead 4-way", "electrical", 12.50),
    ("Cable Ties 100", "electrical", 3.80),
    ("Light Switch", "electrical", 5.60),
    ("Pipe Wrench", "plumbing", 27.30),
    ("PTFE Tape", "plumbing", 1.90),
    ("Sink Trap", "plumbing", 8.40),
    ("Basin Tap", "plumbing", 54.00),
    ("Copper Pipe 15mm 2m", "plumbing", 11.20),
]
VENDORS = [
    (1, "Brennan Tools", "Ireland", 4),
    (2, "Kessler Werkzeug", "Germany", 5),
    (3, "Nordhaus Supply", "Germany", 3),
    (4, "Greenleaf Garden Co", "United Kingdom", 4),
    (5, "Colourworks", "United Kingdom", 2),
    (6, "Voltline", "Netherlands", 3),
    (7, "Aquaflow Plumbing", "Spain", 4),
    (8, "Hansen Import", "Denmark", 1),
    (9, "Lumen Electric", "Poland", 5),
]
# which vendors carry each category (a vendor may carry several)
CARRIERS = {
    "tools": [1, 2, 3, 8],
    "garden": [4, 3, 8],
    "paint": [5, 3],
    "electrical": [6, 9, 8],
    "plumbing": [7, 3],
}
YEAR_START = dt.date(2025, 1, 2)


def script() -> str:
    """The supply database: the schema above and its rows, drawn from a fixed seed."""
    rng = random.Random(20261129)
    items = [(i + 1, name, category, price) for i, (name, category, price) in enumerate(ITEMS)]
    offers: dict[int, list[tuple[int, float, int]]] = {}  # item -> (vendor, unit cost, lead days)
    item_vendor: list[tuple[object, ...]] = []
    for it_id, _, category, price in items:
        vendors = rng.sample(CARRIERS[category], rng.randrange(1, min(3, len(CARRIERS[category])) + 1))
        for vn_id in sorted(vendors):
            cost = round(price * rng.uniform(0.45, 0.7), 2)
            lead = rng.choice([2, 3, 5, 7, 10, 14])
            offers.setdefault(it_id, []).append((vn_id, cost, lead))
            item_vendor.append((it_id, vn_id, cost, lead))
    stock: list[tuple[object, ...]] = []
    for st_id, *_ in STORES:
        counted = dt.datetime(2025, 6, 30, 7, 0) if st_id % 3 else dt.datetime(2025, 7, 1, 7, 30)
        for it_id, *_ in rng.sample(items, rng.randrange(18, len(items) + 1)):
            at = counted + dt.timedelta(minutes=rng.randrange(0, 600))
            stock.append((st_id, it_id, rng.randrange(0, 120), at.isoformat(sep=" ")))
    stock.sort()
    purchases: list[tuple[object, ...]] = []
    lines: list[tuple[object, ...]] = []
    receipts: list[tuple[object, ...]] = []
    for pu_id in range(1, 261):
        st_id = rng.choice([s[0] for s in STORES] + [1, 1, 4, 6])  # the big stores buy more
        ordered = YEAR_START + dt.timedelta(days=rng.randrange(0, 330))
        status = "open" if ordered > dt.date(2025, 11, 1) else rng.choice(["received"] * 9 + ["cancelled"])
        purchases.append((pu_id, st_id, ordered.isoformat(), status))
        for line_no in range(1, rng.randrange(2, 6)):
            it_id = rng.randrange(1, len(items) + 1)
            vn_id, cost, lead = rng.choice(offers[it_id])
            paid = cost if rng.random() < 0.8 else round(cost * rng.uniform(0.9, 1.1), 2)
            qty = rng.choice([5, 10, 12, 20, 24, 25, 40, 50])
            lines.append((pu_id, line_no, it_id, vn_id, qty, paid))
            if status != "received":
                continue
            first = dt.datetime.combine(ordered + dt.timedelta(days=lead + rng.randrange(-1, 4)), dt.time(8, 0))
            first += dt.timedelta(minutes=rng.randrange(0, 540))
            parts = [qty] if rng.random() < 0.8 else [qty // 2, qty - qty // 2]
            for k, part in enumerate(parts):
                at = first + dt.timedelta(days=3 * k)
                damaged = 0 if rng.random() < 0.85 else rng.randrange(1, max(2, part // 4))
                receipts.append((pu_id, line_no, at.isoformat(sep=" "), part, damaged))
    return (
        SCHEMA
        + insert_statement("region", REGIONS)
        + insert_statement("store", STORES)
        + insert_statement("item", items)
        + insert_statement("vendor", VENDORS)
        + insert_statement("item_vendor", item_vendor)
        + insert_statement("stock", stock)
        + insert_statement("purchase", purchases)
        + insert_statement("purchase_line", lines)
        + insert_statement("receipt", receipts)
    )


if __name__ == "__main__":
    print(script())
