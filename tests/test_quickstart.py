"""The README's two quickstarts, run as written on a folder and a database that are not the demo's.

The commands are read from README.md itself (the bash block after each ``<!-- quickstart: ... -->``
marker), so the README cannot drift from what works. Only what is the user's own is put in: the
folder (``~/handbook``) and the servers' URLs (``db.example.com``) become a folder and databases of
this test. The offline default models answer for real.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator

import pytest
from conftest import ROOT
from sqlalchemy.engine import URL

from kb.stores.connection import quote_identifier

README = ROOT / "README.md"
KB_URL = "mariadb://kb:secret@db.example.com:3306/kb"
READER_URL = "mariadb://reader:secret@db.example.com:3306/library"

HANDBOOK = {
    "leave/parental-leave.md": (
        "---\ntitle: Parental leave\n---\n# Parental leave\n\n"
        "Employees get 16 weeks of paid parental leave, to be taken within the child's first year.\n"
        "Tell your manager at least four weeks before the leave starts.\n"
    ),
    "leave/vacation.md": (
        "# Vacation\n\nEvery employee has 25 vacation days a year. Up to five unused days carry over to "
        "the next year; the rest lapse on 31 March.\n"
    ),
    "it/laptops.txt": (
        "Laptops are replaced every four years. A broken laptop is swapped at the IT desk on the second "
        "floor within one working day.\n"
    ),
    "expenses.md": (
        "# Travel expenses\n\nTrain tickets are reimbursed in second class. Hotels up to 150 euros a night "
        "are reimbursed without approval; above that, ask finance first.\n"
    ),
}

LIBRARY = """
CREATE TABLE members (
  id INT PRIMARY KEY, name VARCHAR(80) NOT NULL, joined_on DATE NOT NULL
) COMMENT 'people who may borrow books';
CREATE TABLE books (
  id INT PRIMARY KEY, title VARCHAR(120) NOT NULL, author VARCHAR(80) NOT NULL, published_year INT
) COMMENT 'the books the library owns, one row per copy';
CREATE TABLE loans (
  id INT PRIMARY KEY,
  book_id INT NOT NULL, member_id INT NOT NULL,
  borrowed_on DATE NOT NULL, returned_on DATE NULL COMMENT 'NULL while the book is out',
  FOREIGN KEY (book_id) REFERENCES books(id), FOREIGN KEY (member_id) REFERENCES members(id)
) COMMENT 'one row per time a member borrowed a book';
"""
MEMBERS = ["Aino Laine", "Bruno Costa", "Chloe Martin", "Dev Patel", "Elif Kaya", "Femi Adeyemi"]
# Loans per member: Dev Patel borrowed the most, by a clear margin.
LOANS_PER_MEMBER = {
    "Aino Laine": 3,
    "Bruno Costa": 5,
    "Chloe Martin": 2,
    "Dev Patel": 9,
    "Elif Kaya": 4,
    "Femi Adeyemi": 1,
}
BOOKS = 37


def quickstart(name: str) -> str:
    """The bash block of the README that follows ``<!-- quickstart: name``."""
    text = README.read_text()
    found = re.search(rf"<!-- quickstart: {name}\b[^>]*-->\s*```bash\n(.*?)```", text, re.S)
    assert found, f"README.md has no quickstart block named {name!r}"
    return found.group(1)


@pytest.fixture
def library(admin, admin_url) -> Iterator[URL]:
    """A small library database (not the demo's) and a SELECT-only account on it."""
    name = f"kbqs_library_{secrets.token_hex(4)}"
    user, password = f"kbqs_{secrets.token_hex(4)}", secrets.token_hex(12)
    admin.execute(f"CREATE DATABASE {quote_identifier(name)} CHARACTER SET utf8mb4")
    try:
        db = quote_identifier(name)
        for statement in filter(str.strip, LIBRARY.split(";")):
            admin.execute(statement.replace("CREATE TABLE ", f"CREATE TABLE {db}."))
        for number, member in enumerate(MEMBERS, start=1):
            admin.execute(f"INSERT INTO {db}.members VALUES (?, ?, ?)", (number, member, f"2024-0{number}-1{number}"))
        for number in range(1, BOOKS + 1):
            admin.execute(
                f"INSERT INTO {db}.books VALUES (?, ?, ?, ?)",
                (number, f"Volume {number}", f"Author {number % 7}", 1950 + number),
            )
        loan = 0
        for member_id, member in enumerate(MEMBERS, start=1):
            for k in range(LOANS_PER_MEMBER[member]):
                loan += 1
                admin.execute(
                    f"INSERT INTO {db}.loans VALUES (?, ?, ?, ?, ?)",
                    (loan, (loan * 5) % BOOKS + 1, member_id, f"2025-0{1 + k % 9}-0{1 + member_id}", None),
                )
        admin.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        admin.execute(f"GRANT SELECT ON {db}.* TO '{user}'@'%'")
        yield admin_url.set(username=user, password=password, database=name)
    finally:
        admin.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")


def run_block(block: str, replacements: dict[str, str], env: dict[str, str]) -> str:
    """Each command of ``block`` in one bash session from the project root, as a user types them
    (``set -e``: a failing command fails the block); returns what they printed."""
    script = block
    for placeholder, value in replacements.items():
        script = script.replace(placeholder, value)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") or k.startswith("KB_TEST_")}
    full_env.update(env)
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, (
        f"the quickstart failed:\n{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done.stdout


def test_the_documents_quickstart_runs_as_written(db_url, tmp_path):
    handbook = tmp_path / "handbook"
    for relative, text in HANDBOOK.items():
        (handbook / relative).parent.mkdir(parents=True, exist_ok=True)
        (handbook / relative).write_text(text)
    block = quickstart("documents")
    assert block.count("kb index ~/handbook") == 2, block  # indexed, then again after an edit
    out = run_block(
        block,
        {"~/handbook": str(handbook)},
        # kb's own tables in a database of this test, not the developer's private "kb" database
        {"KB_DATABASE__URL": db_url.render_as_string(hide_password=False)},
    )
    assert "4 added" in out, out
    assert "parental-leave.md" in out  # the search's best chunk
    assert re.search(r"\b16 weeks\b", out), out  # the answer, from the parental-leave page
    assert "4 unchanged" in out, out  # the second run read nothing again


def test_the_database_quickstart_runs_as_written(db_url, library):
    block = quickstart("database")
    out = run_block(
        block,
        {
            KB_URL: db_url.render_as_string(hide_password=False),
            READER_URL: library.render_as_string(hide_password=False),
        },
        {},
    )
    assert "SELECT" in out and "FROM books" in out.replace("`", ""), out
    assert re.search(rf"\b{BOOKS}\b", out), out  # How many books does the library have?
    top = max(LOANS_PER_MEMBER, key=LOANS_PER_MEMBER.get)
    assert top in out, out  # Which member has borrowed the most books?


def test_the_teach_quickstart_runs_as_written(db_url, library):
    block = quickstart("teach")
    out = run_block(
        block,
        {
            KB_URL: db_url.render_as_string(hide_password=False),
            READER_URL: library.render_as_string(hide_password=False),
        },
        {},
    )
    assert "added: example " in out, out
    assert out.count("  question: How many books are out on loan?") == 2, out  # added, then listed
    assert "[approved example " in out and "How many books are out on loan?]" in out, out  # shown to the model
    assert re.search(rf"\b{sum(LOANS_PER_MEMBER.values())}\b", out), out  # every loan is still open
