"""A finance area for the wide-schema benchmark (benchmarks/wide_database.py), written for kb's
benchmarks (not a public dump): a general ledger with its accounts, cost centres, journals and their
lines, budgets, payables (vendors' invoices and their payments), receivables (invoices to customers
and the receipts against them), tax codes, fixed assets and their depreciation. No question is asked
of it: in the wide database it is an area a question about the other sets must not be sent to, as an
ERP's finance tables stand beside its sales and warehouse tables. Its rows are drawn from a seeded
generator; :func:`script` is the whole database as one SQL script.
"""

from __future__ import annotations

import datetime as dt
import random

from sql_script import insert_statement

NAME = "ledger"

SCHEMA = """
CREATE DATABASE IF NOT EXISTS ledger;
USE ledger;
DROP TABLE IF EXISTS depreciation, fixed_asset, ar_receipt, ar_invoice, ap_payment, ap_invoice, ap_vendor,
  budget_line, gl_journal_line, gl_journal, gl_account, cost_center, tax_code;
CREATE TABLE tax_code (
  tax_code VARCHAR(8) PRIMARY KEY,
  description VARCHAR(60) NOT NULL,
  rate_pct DECIMAL(5, 2) NOT NULL
) COMMENT 'value added tax codes';
CREATE TABLE cost_center (
  cost_center_id INT PRIMARY KEY,
  cc_code VARCHAR(10) NOT NULL UNIQUE,
  cc_title VARCHAR(60) NOT NULL,
  parent_cost_center_id INT NULL,
  FOREIGN KEY (parent_cost_center_id) REFERENCES cost_center (cost_center_id)
) COMMENT 'cost centres, in a hierarchy';
CREATE TABLE gl_account (
  account_no CHAR(6) PRIMARY KEY,
  account_title VARCHAR(80) NOT NULL,
  account_type ENUM('asset', 'liability', 'equity', 'revenue', 'expense') NOT NULL,
  is_active TINYINT(1) NOT NULL
) COMMENT 'the chart of accounts';
CREATE TABLE gl_journal (
  journal_id INT PRIMARY KEY,
  posted_on DATE NOT NULL,
  source ENUM('manual', 'payables', 'receivables', 'assets') NOT NULL,
  memo VARCHAR(120) NOT NULL
) COMMENT 'journal entries posted to the general ledger';
CREATE TABLE gl_journal_line (
  journal_id INT NOT NULL,
  line_no INT NOT NULL,
  account_no CHAR(6) NOT NULL,
  cost_center_id INT NULL,
  debit DECIMAL(12, 2) NOT NULL DEFAULT 0,
  credit DECIMAL(12, 2) NOT NULL DEFAULT 0,
  PRIMARY KEY (journal_id, line_no),
  FOREIGN KEY (journal_id) REFERENCES gl_journal (journal_id),
  FOREIGN KEY (account_no) REFERENCES gl_account (account_no),
  FOREIGN KEY (cost_center_id) REFERENCES cost_center (cost_center_id)
);
CREATE TABLE budget_line (
  fiscal_year SMALLINT NOT NULL,
  account_no CHAR(6) NOT NULL,
  cost_center_id INT NOT NULL,
  amount DECIMAL(12, 2) NOT NULL,
  PRIMARY KEY (fiscal_year, account_no, cost_center_id),
  FOREIGN KEY (account_no) REFERENCES gl_account (account_no),
  FOREIGN KEY (cost_center_id) REFERENCES cost_center (cost_center_id)
) COMMENT 'the budget per year, account and cost centre';
CREATE TABLE ap_vendor (
  ap_vendor_id INT PRIMARY KEY,
  legal_name VARCHAR(80) NOT NULL,
  vat_number VARCHAR(20) NOT NULL,
  payment_terms_days INT NOT NULL
) COMMENT 'suppliers the company pays';
CREATE TABLE ap_invoice (
  ap_invoice_id INT PRIMARY KEY,
  ap_vendor_id INT NOT NULL,
  invoice_ref VARCHAR(30) NOT NULL,
  invoice_date DATE NOT NULL,
  due_date DATE NOT NULL,
  net_amount DECIMAL(12, 2) NOT NULL,
  tax_code VARCHAR(8) NOT NULL,
  FOREIGN KEY (ap_vendor_id) REFERENCES ap_vendor (ap_vendor_id),
  FOREIGN KEY (tax_code) REFERENCES tax_code (tax_code)
) COMMENT 'invoices received from suppliers';
CREATE TABLE ap_payment (
  ap_payment_id INT PRIMARY KEY,
  ap_invoice_id INT NOT NULL,
  paid_on DATE NOT NULL,
  paid_amount DECIMAL(12, 2) NOT NULL,
  FOREIGN KEY (ap_invoice_id) REFERENCES ap_invoice (ap_invoice_id)
);
CREATE TABLE ar_invoice (
  ar_invoice_id INT PRIMARY KEY,
  bill_to_name VARCHAR(80) NOT NULL,
  issued_on DATE NOT NULL,
  due_on DATE NOT NULL,
  net_amount DECIMAL(12, 2) NOT NULL,
  tax_code VARCHAR(8) NOT NULL,
  FOREIGN KEY (tax_code) REFERENCES tax_code (tax_code)
) COMMENT 'invoices issued to customers';
CREATE TABLE ar_receipt (
  ar_receipt_id INT PRIMARY KEY,
  ar_invoice_id INT NOT NULL,
  received_on DATE NOT NULL,
  received_amount DECIMAL(12, 2) NOT NULL,
  FOREIGN KEY (ar_invoice_id) REFERENCES ar_invoice (ar_invoice_id)
);
CREATE TABLE fixed_asset (
  asset_tag VARCHAR(12) PRIMARY KEY,
  asset_title VARCHAR(80) NOT NULL,
  acquired_on DATE NOT NULL,
  acquisition_cost DECIMAL(12, 2) NOT NULL,
  useful_life_months INT NOT NULL,
  cost_center_id INT NOT NULL,
  FOREIGN KEY (cost_center_id) REFERENCES cost_center (cost_center_id)
);
CREATE TABLE depreciation (
  asset_tag VARCHAR(12) NOT NULL,
  period_end DATE NOT NULL,
  charge DECIMAL(12, 2) NOT NULL,
  PRIMARY KEY (asset_tag, period_end),
  FOREIGN KEY (asset_tag) REFERENCES fixed_asset (asset_tag)
) COMMENT 'monthly depreciation charges';
"""

TAX_CODES = [
    ("STD", "standard rate", 24.0),
    ("RED", "reduced rate", 14.0),
    ("LOW", "low rate", 10.0),
    ("EX", "exempt", 0.0),
]
COST_CENTERS = [
    (1, "HQ", "Headquarters", None),
    (2, "FIN", "Finance", 1),
    (3, "OPS", "Operations", 1),
    (4, "IT", "Information technology", 1),
    (5, "WH1", "Warehouse north", 3),
    (6, "WH2", "Warehouse south", 3),
    (7, "SAL", "Sales", 1),
]
ACCOUNTS = [
    ("110000", "Cash at bank", "asset"),
    ("120000", "Trade receivables", "asset"),
    ("150000", "Machinery and equipment", "asset"),
    ("159000", "Accumulated depreciation", "asset"),
    ("210000", "Trade payables", "liability"),
    ("230000", "VAT payable", "liability"),
    ("300000", "Share capital", "equity"),
    ("400000", "Sales revenue", "revenue"),
    ("410000", "Service revenue", "revenue"),
    ("500000", "Cost of goods sold", "expense"),
    ("610000", "Rent", "expense"),
    ("620000", "Salaries", "expense"),
    ("630000", "Travel", "expense"),
    ("640000", "Software licences", "expense"),
    ("680000", "Depreciation expense", "expense"),
]
LEGAL = ["Arkon", "Belvar", "Ciroc", "Delmont", "Eskola", "Fennix", "Graniteway", "Holmfirth", "Ivaro", "Jurvala"]


def script() -> str:
    """The ledger database: the schema above and its rows, drawn from a fixed seed."""
    rng = random.Random(1129)
    start = dt.date(2025, 1, 1)
    accounts = [(no, title, kind, int(no != "410000")) for no, title, kind in ACCOUNTS]  # one account closed
    vendors = [
        (i + 1, f"{name} Oy", f"FI{rng.randrange(10**7, 10**8)}", rng.choice([14, 30, 45]))
        for i, name in enumerate(LEGAL)
    ]
    journals, lines, ap_invoices, payments, ar_invoices, receipts = [], [], [], [], [], []
    for journal_id in range(1, 401):
        posted = start + dt.timedelta(days=rng.randrange(0, 330))
        source = rng.choice(["manual", "payables", "payables", "receivables", "receivables"])
        journals.append((journal_id, posted.isoformat(), source, f"{source} entry {journal_id}"))
        amount = round(rng.uniform(50, 9000), 2)
        debit_account = rng.choice([a[0] for a in ACCOUNTS if a[2] in ("expense", "asset")])
        credit_account = rng.choice(["110000", "210000", "400000"])
        center = rng.choice([c[0] for c in COST_CENTERS])
        lines.append((journal_id, 1, debit_account, center, amount, 0))
        lines.append((journal_id, 2, credit_account, None, 0, amount))
    for invoice_id in range(1, 241):
        vendor = rng.choice(vendors)
        issued = start + dt.timedelta(days=rng.randrange(0, 320))
        net = round(rng.uniform(100, 20000), 2)
        ap_invoices.append(
            (
                invoice_id,
                vendor[0],
                f"INV-{rng.randrange(1000, 99999)}",
                issued.isoformat(),
                (issued + dt.timedelta(days=vendor[3])).isoformat(),
                net,
                rng.choice(["STD", "STD", "RED", "EX"]),
            )
        )
        if rng.random() < 0.8:
            paid = issued + dt.timedelta(days=vendor[3] + rng.randrange(-5, 12))
            payments.append((len(payments) + 1, invoice_id, paid.isoformat(), net))
    for invoice_id in range(1, 301):
        issued = start + dt.timedelta(days=rng.randrange(0, 320))
        net = round(rng.uniform(80, 15000), 2)
        ar_invoices.append(
            (
                invoice_id,
                f"{rng.choice(LEGAL)} {rng.choice(['Ab', 'Ltd', 'GmbH', 'AS'])}",
                issued.isoformat(),
                (issued + dt.timedelta(days=30)).isoformat(),
                net,
                rng.choice(["STD", "STD", "LOW", "EX"]),
            )
        )
        if rng.random() < 0.75:
            received = issued + dt.timedelta(days=rng.randrange(10, 60))
            receipts.append((len(receipts) + 1, invoice_id, received.isoformat(), net))
    budgets = [
        (2025, no, center, round(rng.uniform(5000, 200000), -2))
        for no, _, kind in ACCOUNTS
        if kind == "expense"
        for center, *_ in COST_CENTERS[1:]
    ]
    assets, charges = [], []
    for number in range(1, 31):
        acquired = dt.date(2022, 1, 1) + dt.timedelta(days=rng.randrange(0, 1000))
        cost = round(rng.uniform(1500, 60000), -1)
        life = rng.choice([36, 60, 84, 120])
        tag = f"FA-{number:04d}"
        assets.append(
            (
                tag,
                f"{rng.choice(['Forklift', 'Server', 'Van', 'Shelving', 'Laptop batch'])} {number}",
                acquired.isoformat(),
                cost,
                life,
                rng.choice([3, 4, 5, 6]),
            )
        )
        for month in range(1, 12):
            period_end = dt.date(2025, month + 1, 1) - dt.timedelta(days=1)
            if period_end > acquired:
                charges.append((tag, period_end.isoformat(), round(cost / life, 2)))
    return (
        SCHEMA
        + insert_statement("tax_code", TAX_CODES)
        + insert_statement("cost_center", COST_CENTERS)
        + insert_statement("gl_account", accounts)
        + insert_statement("gl_journal", journals)
        + insert_statement("gl_journal_line", lines)
        + insert_statement("budget_line", budgets)
        + insert_statement("ap_vendor", vendors)
        + insert_statement("ap_invoice", ap_invoices)
        + insert_statement("ap_payment", payments)
        + insert_statement("ar_invoice", ar_invoices)
        + insert_statement("ar_receipt", receipts)
        + insert_statement("fixed_asset", assets)
        + insert_statement("depreciation", charges)
    )


if __name__ == "__main__":
    print(script())
