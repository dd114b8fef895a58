"""A business database of three hundred tables (sixty generated shops' areas of five tables each, joined
by foreign keys): what the SQL engine's prompts show of it, and that their state is reused."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from conftest import BUSINESS_TABLES, scratch_database
from helpers import sql_answer
from scripted_llm import PromptCachingScriptedLLM, ScriptedLLM
from sqlalchemy.engine import URL

from kb.engines.sql.engine import SQLEngine
from kb.engines.sql.schema import DescribedSQLDatabase
from kb.engines.sql.values import ValueIndex, tables_named
from kb.stores.connection import MariaDBConnection

AREAS = 60
KINDS = ("customer", "orders", "item", "order_line", "stock")


def area_tables(area: int) -> list[str]:
    return [f"area{area:02d}_{kind}" for kind in KINDS]


@pytest.fixture
def wide_url(admin, admin_url) -> Iterator[URL]:
    """A database of its own for the wide schema (kb's own tables go to ``db_url``'s), dropped after."""
    with scratch_database(admin, admin_url) as url:
        yield url


@pytest.fixture
def wide(wide_url) -> Iterator[tuple[MariaDBConnection, str, list[str]]]:
    """Three hundred tables: per area a customer, its orders, items, the order lines between orders
    and items, and stock per item; area 7, the lighting shop, holds rows."""
    db = MariaDBConnection(wide_url)
    for area in range(AREAS):
        customer, orders, item, line, stock = area_tables(area)
        db.execute(f"CREATE TABLE {customer} (id INT PRIMARY KEY, name VARCHAR(40), city VARCHAR(30))")
        db.execute(
            f"CREATE TABLE {orders} (id INT PRIMARY KEY, customer_id INT NOT NULL, placed_on DATE, "
            f"status ENUM('open','shipped','cancelled'), FOREIGN KEY (customer_id) REFERENCES {customer}(id))"
        )
        db.execute(f"CREATE TABLE {item} (id INT PRIMARY KEY, title VARCHAR(60), price DECIMAL(8,2))")
        db.execute(
            f"CREATE TABLE {line} (order_id INT, item_id INT, quantity INT, PRIMARY KEY (order_id, item_id), "
            f"FOREIGN KEY (order_id) REFERENCES {orders}(id), FOREIGN KEY (item_id) REFERENCES {item}(id))"
        )
        db.execute(
            f"CREATE TABLE {stock} (item_id INT, depot VARCHAR(20), quantity INT, PRIMARY KEY (item_id, depot), "
            f"FOREIGN KEY (item_id) REFERENCES {item}(id))"
        )
    db.execute("ALTER TABLE area07_customer COMMENT 'the customers of the lighting shop'")
    db.execute("ALTER TABLE area07_item COMMENT 'the lamps the lighting shop sells'")
    db.execute("INSERT INTO area07_customer VALUES (1, 'Ada', 'Lyon'), (2, 'Bo', 'Lyon'), (3, 'Cy', 'Oslo')")
    db.execute("INSERT INTO area07_orders VALUES (1, 1, '2025-03-01', 'open'), (2, 3, '2025-03-02', 'shipped')")
    db.execute("INSERT INTO area07_item VALUES (1, 'Lamp', 20.00), (2, 'Desk', 150.00)")
    db.execute("INSERT INTO area07_order_line VALUES (1, 1, 2), (1, 2, 1), (2, 1, 5)")
    tables = [table for area in range(AREAS) for table in area_tables(area)]
    yield db, wide_url.database, tables
    db.dispose()


def one_statement_engine(wide, llm, embed_model, **options) -> SQLEngine:
    """An engine over the wide schema that asks ``llm`` for one statement a question (no candidates,
    no rescue samples)."""
    db, database, tables = wide
    return SQLEngine(
        llm,
        db,
        database=database,
        tables=tables,
        candidates=1,
        rescue_samples=0,
        embed_model=lambda: embed_model,
        **options,
    )


LAMPS_FROM_LYON = (
    "SELECT SUM(l.quantity) FROM area07_order_line AS l JOIN area07_orders AS o ON o.id = l.order_id "
    "JOIN area07_customer AS c ON c.id = o.customer_id JOIN area07_item AS i ON i.id = l.item_id "
    "WHERE c.city = 'Lyon' AND i.title = 'Lamp'"
)
OPEN_ORDERS = "SELECT COUNT(*) FROM area07_orders WHERE status = 'open'"


def test_three_hundred_tables_are_all_in_every_prompt_as_a_catalogue_whose_state_every_question_reuses(
    wide, local_embed
):
    """With ``wide_schema: catalogue``: their ``CREATE TABLE``s do not fit the model's context window,
    one line per table does: every prompt shows every table (the tables a statement joins and those
    its joins pass through among them), the prompt up to the question is warmed once, and each
    question about area 7 is evaluated from the question on."""
    _, _, tables = wide
    script = {"lamps": LAMPS_FROM_LYON, "open orders": OPEN_ORDERS}

    def answer(prompt: str) -> str:
        if not prompt.endswith("SQL: "):
            return "The answer."
        question = prompt.rsplit("Question: ", 1)[1]
        return next(sql for cue, sql in script.items() if cue in question)

    llm = PromptCachingScriptedLLM(answer, context_window=16_384)
    engine = one_statement_engine(wide, llm, local_embed, wide_schema="catalogue")
    reading = engine.reading
    assert (reading.tables, reading.form) == (300, "catalogue")
    assert reading.catalogue_tokens <= reading.token_budget
    assert engine.warm_prompt_cache() == 1

    lamps = sql_answer(engine, "How many lamps did the customers from Lyon order in area 7?")
    assert lamps.sql == LAMPS_FROM_LYON and lamps.rows == [{"SUM(l.quantity)": 2}]
    open_orders = sql_answer(engine, "How many open orders are there in area 7?")
    assert open_orders.sql == OPEN_ORDERS and open_orders.rows == [{"COUNT(*)": 1}]
    asked = [(prompt, reused) for prompt, reused in zip(llm.prompts, llm.reused) if prompt.endswith("SQL: ")]
    assert len(asked) == 2
    for prompt, reused in asked:
        assert all(f"\n{table}(" in prompt for table in tables)  # every table, once, in one line
        assert "area07_order_line(order_id -> area07_orders.id, item_id -> area07_item.id" in prompt
        assert reused >= prompt.index("Question: ")  # only the question is evaluated
    (first, _), (second, _) = asked
    assert first[: first.index("Question: ")] == second[: second.index("Question: ")]


def test_the_start_up_reading_says_how_a_prompt_shows_the_tables_and_what_a_larger_window_would_show(
    wide, business, local_embed
):
    """On the default model's 4,096 tokens neither three hundred ``CREATE TABLE``s nor their catalogue
    fit: each question gets its closest tables, and the reading says how many more tokens of context
    would show them all; the demo's six tables are all in every prompt."""
    db, database, tables = wide
    narrow = SQLEngine(ScriptedLLM([]), db, database=database, tables=tables, embed_model=lambda: local_embed)
    reading = narrow.reading
    assert (reading.tables, reading.form, reading.most_shown) == (300, "retrieved", 5) and reading.seconds > 0
    assert reading.catalogue_tokens > reading.token_budget
    summary = reading.summary()
    assert summary.startswith(
        "300 tables; a prompt shows the tables its question names or is closest to that fit (at most 5"
    )
    assert (
        f"catalogue needs a context window {reading.catalogue_tokens - reading.token_budget:,} tokens larger" in summary
    )
    assert narrow.warm_prompt_cache() == 0
    small = SQLEngine(
        ScriptedLLM([]),
        MariaDBConnection(business),
        database="kb_business",
        tables=BUSINESS_TABLES,
        embed_model=lambda: local_embed,
    )
    assert small.reading.summary().startswith("6 tables; every prompt shows all 6; read in ")
    assert small.reading.form == "all" and small.reading.catalogue_tokens == 0


def test_kb_config_check_says_how_many_tables_a_prompt_shows_of_three_hundred(wide, wide_url, db_url, run_kb):
    """What an operator reads before the first question: the tables, the form a prompt shows them in,
    the context window that would show them all, and the start-up reading's seconds."""
    _, database, _ = wide
    env = {
        "KB_DATABASE__URL": db_url.render_as_string(hide_password=False),
        "KB_SQL__URL": wide_url.render_as_string(hide_password=False),
        "KB_SQL__DATABASE": database,
    }
    checked = run_kb("config", "check", env=env)
    assert checked.returncode == 0, checked.stderr
    line = next(line for line in checked.stdout.splitlines() if line.startswith(f"business database {database}: "))
    assert "300 tables; a prompt shows the tables its question names or is closest to that fit (at most 5, " in line
    assert "tokens larger); read in " in line


def test_retrieved_tables_come_with_the_tables_their_joins_pass_through(wide, local_embed):
    """With ``wide_schema: retrieved`` and two tables a question: the question is about the lighting
    shop's customers and its lamps (``area07_customer``, ``area07_item``); the orders and their lines,
    which join them, are added though the question says nothing of them."""
    _, _, tables = wide
    llm = ScriptedLLM([LAMPS_FROM_LYON, "The answer."], context_window=16_384)
    engine = one_statement_engine(wide, llm, local_embed, wide_schema="retrieved", tables_retrieved=2)
    assert engine.reading.form == "retrieved" and engine.reading.most_shown == 2
    lamps = sql_answer(engine, "How many lamps did the lighting shop's customers from Lyon buy?")
    assert lamps.rows == [{"SUM(l.quantity)": 2}]
    shown = [table for table in tables if f"CREATE TABLE {table} " in llm.prompts[0]]
    assert shown == ["area07_customer", "area07_orders", "area07_item", "area07_order_line"]


LAMPS_TO = (
    "SELECT SUM(l.quantity) FROM area07_order_line AS l JOIN area07_orders AS o ON o.id = l.order_id "
    "JOIN area07_customer AS c ON c.id = o.customer_id JOIN area07_item AS i ON i.id = l.item_id "
    "WHERE c.city = '{city}' AND i.title = 'Lamp'"
)


def test_two_questions_about_one_area_share_their_retrieved_prompt_up_to_the_question(wide, local_embed):
    """With ``wide_schema: retrieved`` (the default beyond the context window): the rules before the
    tables are warmed at start-up, so the first question is evaluated from its tables on; a second
    question about the same shop's customers and lamps is shown the same tables in the schema's order,
    so it is evaluated from the question on."""
    _, _, tables = wide

    def answer(prompt: str) -> str:
        if not prompt.endswith("SQL: "):
            return "The answer."
        return LAMPS_TO.format(city="Oslo" if "Oslo" in prompt.rsplit("Question: ", 1)[1] else "Lyon")

    llm = PromptCachingScriptedLLM(answer, context_window=16_384)
    engine = one_statement_engine(wide, llm, local_embed, wide_schema="retrieved", tables_retrieved=2)
    assert engine.reading.form == "retrieved"
    assert engine.warm_prompt_cache() == 1
    lyon = sql_answer(engine, "How many lamps did the lighting shop's customers from Lyon buy?")
    oslo = sql_answer(engine, "How many lamps did the lighting shop's customers from Oslo buy?")
    assert (lyon.rows, oslo.rows) == ([{"SUM(l.quantity)": 2}], [{"SUM(l.quantity)": 5}])
    asked = [(prompt, reused) for prompt, reused in zip(llm.prompts, llm.reused) if prompt.endswith("SQL: ")]
    assert len(asked) == 2
    (first, first_reused), (second, second_reused) = asked
    shown = [[table for table in tables if f"CREATE TABLE {table} " in prompt] for prompt in (first, second)]
    assert shown == [["area07_customer", "area07_orders", "area07_item", "area07_order_line"]] * 2
    assert first.index("Tables:") < first_reused <= first.index("CREATE TABLE")  # the rules, warmed
    assert second_reused >= second.index("Question: ")  # only the question is evaluated


def test_a_retrieved_table_shows_a_long_list_of_values_as_two_examples(wide, local_embed):
    """Each question's retrieved tables are evaluated anew, so a column listing more values than a
    catalogue entry would (``MAX_CATALOGUED``) shows two of them; a value the question writes still
    names its table though the prompt does not list it, and a small schema's prompt lists them all."""
    db, _, _ = wide
    titles = ["Bulb", "Candle", "Fan", "Globe", "Shade", "Sconce", "Torch"]
    db.execute(
        "INSERT INTO area07_item VALUES " + ", ".join(f"({i}, '{t}', 9.00)" for i, t in enumerate(titles, start=3))
    )
    llm = ScriptedLLM(["SELECT price FROM area07_item WHERE title = 'Sconce'", "The answer."], context_window=16_384)
    engine = one_statement_engine(wide, llm, local_embed, wide_schema="retrieved", tables_retrieved=1)
    question = "What does the item 'Sconce' cost?"
    assert engine.tables_shown(question) == ["area07_item"]
    assert sql_answer(engine, question).rows == [{"price": Decimal("9.00")}]
    prompt = llm.prompts[0]
    assert "title VARCHAR(60),  -- e.g. 'Bulb', 'Candle'" in prompt and "'Sconce'" not in prompt.split("Question:")[0]
    assert "CREATE TABLE area07_item (  -- the lamps the lighting shop sells" in prompt
    whole = engine.sql_database.get_single_table_info("area07_item")  # as a small schema's prompt shows it
    assert "values: 'Bulb', 'Candle', 'Desk', 'Fan', 'Globe', 'Lamp', 'Sconce', 'Shade', 'Torch'" in whole


def test_a_table_holding_a_value_the_question_writes_is_shown_before_the_most_similar(wide, local_embed):
    """With one table a question: 'Cy' is a customer of area 7 (``area07_customer.name``), so that
    table is the one shown, whatever the sixty ``*_orders`` tables' similarity to "orders". Where the
    question only resembles a value (the noun "desks" beside the item 'Desk') or names an ENUM member
    every area's orders share ('open'), no table is named by it."""
    db, database, tables = wide
    engine = one_statement_engine(wide, ScriptedLLM([]), local_embed, wide_schema="retrieved", tables_retrieved=1)
    assert engine.tables_shown("Which orders did Cy place?") == ["area07_customer"]
    described = [engine.sql_database.describer.table(t) for t in tables]
    assert tables_named("Which orders did Cy place?", described, engine.values) == ["area07_customer"]
    assert tables_named("How many desks are in stock?", described, engine.values) == []
    assert tables_named("How many open orders are there?", described, engine.values) == []
    assert tables_named("Which lamps are sold as 'Desk'?", described, engine.values) == ["area07_item"]


def test_a_value_several_tables_hold_names_the_one_the_question_names_by_name(db, db_url):
    """'Japan' is a value of ``student.home_country`` and of ``customer.country``: "students from
    Japan" names ``student`` alone; "who is from Japan?" names neither table, so both."""
    db.execute("CREATE TABLE student (id INT PRIMARY KEY, name VARCHAR(40), home_country VARCHAR(30))")
    db.execute("CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(40), country VARCHAR(30))")
    db.execute("INSERT INTO student VALUES (1, 'Aiko', 'Japan'), (2, 'Ben', 'Chile')")
    db.execute("INSERT INTO customer VALUES (1, 'Acme', 'Japan'), (2, 'Bolt', 'Peru')")
    described = DescribedSQLDatabase(db, db_url.database, ["customer", "student"]).describer
    tables = [described.table("customer"), described.table("student")]
    index = ValueIndex(db, db_url.database, ["customer", "student"])
    assert tables_named("How many students come from Japan?", tables, index) == ["student"]
    assert tables_named("Who is from Japan?", tables, index) == ["customer", "student"]
