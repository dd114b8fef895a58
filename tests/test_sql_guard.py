"""The read-only guard: hostile statements refused (nothing changes), legitimate SELECTs run."""

from __future__ import annotations

import time

import pytest
from conftest import BUSINESS_TABLES
from helpers import sql_answer
from scripted_llm import ScriptedLLM

from kb.engines.sql.engine import SQLEngine
from kb.engines.sql.guard import CheckedSQL, ReadOnlyGuard, SQLRefused
from kb.stores.connection import MariaDBConnection

HOSTILE = [
    # writes and DDL
    "UPDATE orders SET total = 0",
    "DELETE FROM orders",
    "dElEtE FROM orders WHERE 1=1",
    "INSERT INTO orders VALUES (9999, 1, '2025-01-01', NULL, 'placed', 1)",
    "REPLACE INTO products VALUES (1, 'x', 'x', 'x', 1, 1)",
    "DROP TABLE orders",
    "drop table if exists returns",
    "TRUNCATE TABLE support_tickets",
    "TRUNCATE orders",
    "ALTER TABLE orders ADD COLUMN pwned INT",
    "CREATE TABLE evil (a INT)",
    "CREATE USER 'x'@'%' IDENTIFIED BY 'y'",
    "GRANT ALL PRIVILEGES ON *.* TO 'kb_reader'@'localhost'",
    "RENAME TABLE orders TO gone",
    # session and server state
    "SET GLOBAL max_connections = 1",
    "SET @x = 1",
    "SET SESSION sql_mode = ''",
    "CALL mysql.some_procedure()",
    "LOAD DATA INFILE '/etc/passwd' INTO TABLE orders",
    "HANDLER orders OPEN",
    "LOCK TABLES orders WRITE",
    "PREPARE s FROM 'DROP TABLE orders'",
    "EXECUTE s",
    "DO SLEEP(5)",
    "SHOW GRANTS",
    # several statements
    "SELECT 1; DROP TABLE orders",
    "SELECT * FROM orders;\nDELETE FROM orders",
    "select 1 -- comment\n; drop table orders",
    # comments and case tricks
    "/*!50000 DROP TABLE orders */",
    "SELECT * FROM orders /*! ; DELETE FROM orders */",
    "SELECT * FROM orders /*M!100000 ; DELETE FROM orders */",
    "SeLeCt * FrOm OrDeRs; TrUnCaTe OrDeRs",
    # files, sleeps, locks, variables
    "SELECT * FROM orders INTO OUTFILE '/tmp/orders.csv'",
    "SELECT * FROM customers INTO DUMPFILE '/tmp/c'",
    "SELECT LOAD_FILE('/etc/passwd')",
    "SELECT SLEEP(10)",
    "SELECT BENCHMARK(100000000, MD5('x'))",
    "SELECT GET_LOCK('kb', 100)",
    "SELECT * FROM orders WHERE id = 1 AND SLEEP(3)",
    "SELECT @a := COUNT(*) FROM orders",
    "SELECT @@version",
    "SELECT COUNT(*) INTO @n FROM orders",
    "SELECT * FROM orders FOR UPDATE",
    "SELECT * FROM orders LOCK IN SHARE MODE",
    # other schemas and tables
    "SELECT * FROM mysql.user",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM performance_schema.threads",
    "SELECT user, password FROM mysql.user",
    "SELECT id FROM orders UNION SELECT user FROM mysql.user",
    "SELECT id FROM orders UNION ALL SELECT table_name FROM information_schema.tables",
    "SELECT * FROM kb.kb_nodes",
    "SELECT * FROM secrets",
    "WITH x AS (SELECT * FROM mysql.user) SELECT * FROM x",
    "SELECT * FROM orders WHERE customer_id IN (SELECT id FROM kb.kb_chat)",
    "SELECT USER(), VERSION(), DATABASE()",
    "```sql\nDROP TABLE orders;\n```",
]

LEGITIMATE = {
    "count": ("SELECT COUNT(*) AS n FROM orders", lambda rows: rows == [{"n": 1800}]),
    "join + group": (
        "SELECT p.name, SUM(oi.quantity) AS sold FROM order_items oi JOIN products p ON p.id = oi.product_id "
        "GROUP BY p.name ORDER BY sold DESC",
        lambda rows: len(rows) == 8,
    ),
    "window": (
        "SELECT customer_id, total, RANK() OVER (PARTITION BY customer_id ORDER BY total DESC) AS r "
        "FROM orders ORDER BY customer_id, r LIMIT 5",
        lambda rows: rows[0]["r"] == 1,
    ),
    "cte": (
        "WITH monthly AS (SELECT DATE_FORMAT(ordered_at, '%Y-%m') AS month, COUNT(*) AS n FROM orders GROUP BY month) "
        "SELECT month, n FROM monthly ORDER BY n DESC LIMIT 3",
        lambda rows: len(rows) == 3,
    ),
    "subquery": (
        "SELECT COUNT(*) AS late FROM returns r JOIN orders o ON o.id = r.order_id "
        "WHERE r.requested_at > DATE_ADD(o.delivered_at, INTERVAL 30 DAY)",
        lambda rows: rows[0]["late"] > 0,
    ),
    "in subquery": (
        "SELECT name FROM customers WHERE id IN (SELECT customer_id FROM support_tickets WHERE priority = 'urgent') "
        "LIMIT 3",
        lambda rows: len(rows) == 3,
    ),
    "union": (
        "SELECT 'orders' AS t, COUNT(*) AS n FROM orders UNION ALL SELECT 'returns', COUNT(*) FROM returns",
        lambda rows: {r["t"] for r in rows} == {"orders", "returns"},
    ),
    "fenced": ("```sql\nSELECT COUNT(*) AS n FROM products;\n```", lambda rows: rows == [{"n": 8}]),
}


@pytest.fixture
def guard(project_settings):
    return ReadOnlyGuard(BUSINESS_TABLES, project_settings.sql.database)


@pytest.fixture
def engine_for(local_embed):
    def make(business, llm, **kwargs):
        readonly = MariaDBConnection(business)
        kwargs.setdefault("candidates", 1)  # one statement per question unless asked
        return SQLEngine(
            llm, readonly, database="kb_business", tables=BUSINESS_TABLES, embed_model=lambda: local_embed, **kwargs
        )

    return make


def test_a_statement_sqlglot_cannot_tokenize_is_a_retryable_refusal(guard):
    # an unclosed quote (the 1.5B model wrote one in a chat) makes sqlglot's tokenizer raise, not its parser
    with pytest.raises(SQLRefused, match="could not be parsed") as refused:
        guard.check("SELECT COUNT(*) FROM returns WHERE status = 'open")
    assert refused.value.retryable


@pytest.mark.parametrize("statement", HOSTILE)
def test_hostile_statement_is_refused_with_a_reason(guard, statement):
    with pytest.raises(SQLRefused) as refused:
        guard.check(statement)
    assert str(refused.value).strip(), "a refusal says what was wrong"


def test_hostile_statements_through_the_engine_change_nothing(business, business_checksum, engine_for):
    before = business_checksum()
    engine = engine_for(business, ScriptedLLM(lambda prompt: HOSTILE[0]))
    started = time.perf_counter()
    for statement in HOSTILE:
        engine.writers.greedy = _Fixed(statement)
        answer = sql_answer(engine, "do something")
        assert answer.refused and answer.refusal_reason and answer.rows is None, statement
        assert "did not run" in answer.text
    assert time.perf_counter() - started < 10  # none of the SLEEP/BENCHMARK calls ran
    assert business_checksum() == before


class _Fixed:
    """Stands in for the SQL-writing step: returns a fixed statement (the LLM's part is scripted)."""

    def __init__(self, sql: str) -> None:
        self.sql = sql

    def query(self, question):
        from llama_index.core.base.response.schema import Response

        return Response(response=self.sql, metadata={"sql_query": self.sql})


@pytest.mark.parametrize("name", list(LEGITIMATE))
def test_legitimate_selects_pass_and_run(business, name, engine_for):
    statement, check = LEGITIMATE[name]
    engine = engine_for(business, ScriptedLLM(["Here is the answer."]))
    engine.writers.greedy = _Fixed(statement)
    answer = sql_answer(engine, "a question")
    assert not answer.refused, answer.refusal_reason
    assert answer.rows and check(answer.rows), answer.rows
    assert answer.text.startswith("Here is the answer.")  # a result of several rows may get kb's note after it


def test_scripted_llm_answering_drop_table_leaves_the_table(business, business_checksum, engine_for):
    """The whole path: NLSQLTableQueryEngine asks the (scripted) LLM, which answers DROP TABLE orders."""
    before = business_checksum()
    engine = engine_for(business, ScriptedLLM(["SQLQuery: DROP TABLE orders"]))
    answer = sql_answer(engine, "How many orders are there?")
    assert answer.refused and "only SELECT" in answer.refusal_reason and answer.sql == "DROP TABLE orders"
    assert business_checksum() == before


def test_the_account_itself_cannot_write(business):
    readonly = MariaDBConnection(business)
    with pytest.raises(Exception, match="command denied"):
        readonly.execute("DELETE FROM orders WHERE id < 0")
    with pytest.raises(Exception, match="denied"):
        readonly.fetchall("SELECT * FROM mysql.user")


def test_read_only_transaction_time_limit_and_row_cap(business, admin_url, project_settings, local_embed):
    # layer 3 on its own: even a privileged account cannot write inside the READ ONLY transaction
    privileged = MariaDBConnection(admin_url.set(database=project_settings.sql.database))
    engine = SQLEngine(
        ScriptedLLM([]), privileged, database="kb_business", tables=BUSINESS_TABLES, row_limit=10, timeout_s=0.5
    )
    with pytest.raises(Exception, match="READ ONLY"):
        engine.run(CheckedSQL(original="", sql="DELETE FROM orders WHERE id < 0", tables=("orders",)))
    ran = engine.run(CheckedSQL(original="", sql="SELECT id FROM order_items", tables=("order_items",)))
    assert ran.rows is not None and len(ran.rows) == 10 and ran.truncated
    started = time.perf_counter()
    try:
        engine.run(CheckedSQL(original="", sql="SELECT SLEEP(5) AS s", tables=()))
    except Exception as exc:
        assert "max_statement_time" in str(exc) or "interrupted" in str(exc).lower()
    assert time.perf_counter() - started < 3
    privileged.dispose()


def test_each_statement_text_is_parsed_once_per_question(business, engine_for, monkeypatch):
    """The guard, the corrections and the tie probe share one parse of a text (sql_guard.parse_statements)."""
    import collections

    from kb.engines.sql import guard as sql_guard

    parsed: collections.Counter = collections.Counter()
    real_parse = sql_guard.sqlglot.parse

    def counting_parse(sql, *args, **kwargs):
        parsed[sql] += 1
        return real_parse(sql, *args, **kwargs)

    sql_guard._parsed.cache_clear()
    monkeypatch.setattr(sql_guard.sqlglot, "parse", counting_parse)
    engine = engine_for(business, ScriptedLLM(["Here is the answer."]))
    # a LIMIT that cuts tied rows: the guard, the tie probe and the guard again on the probe
    engine.writers.greedy = _Fixed("SELECT city, COUNT(*) AS n FROM customers GROUP BY city ORDER BY n DESC LIMIT 1")
    answer = sql_answer(engine, "Which city has the most customers?")
    assert answer.rows and len(answer.rows) > 1, answer.rows  # the tie probe ran and found the tied cities
    assert parsed and max(parsed.values()) == 1, parsed


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT " + "-" * 5000 + "1 FROM orders",  # the 1.5B model's run of unary minus signs (RecursionError)
        "SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM orders",
        "SELECT id FROM orders WHERE " + " AND ".join(f"NOT (id = {n}" for n in range(200)) + ")" * 200,
    ],
)
def test_a_statement_too_deep_to_parse_is_a_retryable_refusal_not_a_crash(guard, statement):
    with pytest.raises(SQLRefused, match="could not be parsed") as refused:
        guard.check(statement)
    assert refused.value.retryable and "nested" in str(refused.value)


def test_a_model_that_only_writes_statements_too_deep_to_parse_gets_an_answer(business, engine_for):
    """Through the engine: every statement (the first, the corrections, the rescue samples) is refused
    as unparseable, and the question still gets an answer saying so, never a traceback."""
    deep = "SELECT " + "-" * 5000 + "1 FROM orders"
    engine = engine_for(business, ScriptedLLM(lambda prompt: deep))
    answer = sql_answer(engine, "How many orders are there?")
    assert not answer.rows
    assert answer.attempts and all("nested" in (a.error or "") for a in answer.attempts)
    assert answer.text.strip()


def test_the_depth_limit_leaves_every_labelled_gold_statement_parseable():
    """No gold statement of the benchmark sets comes near the depth limit."""
    from pathlib import Path

    import yaml

    from kb.engines.sql.guard import MAX_STATEMENT_DEPTH, _depth, parse_statement

    gold = [
        item["sql"]
        for path in sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "data").glob("sql_*.yaml"))
        for item in yaml.safe_load(path.read_text())
    ]
    assert len(gold) > 300
    deepest = max(_depth(parse_statement(sql)) for sql in gold)
    assert deepest <= MAX_STATEMENT_DEPTH // 2, deepest


# A CTE's name stands for the CTE only inside the scope that defines it, after its definition; every
# other reference is a table, and must be allowed. With `customers` allowed and every other table
# readable by the account, each statement below would read a table the guard must keep out.
CTE_BYPASSES = [
    # a CTE named like a table, defined after the CTE that reads that table
    "WITH a AS (SELECT * FROM order_items), order_items AS (SELECT 1 AS x) SELECT * FROM a",
    # a CTE of a subquery does not hide the outer query's table of the same name
    "SELECT * FROM orders WHERE EXISTS (WITH orders AS (SELECT 1 AS x) SELECT 1 FROM orders)",
    "SELECT (WITH returns AS (SELECT 1 AS x) SELECT COUNT(*) FROM returns) AS n, r.* FROM returns r",
    "SELECT c.name FROM customers c HAVING (SELECT COUNT(*) FROM order_items) > "
    "(WITH order_items AS (SELECT 1 AS x) SELECT COUNT(*) FROM order_items)",
    # a CTE that shadows an allowed table reads another table
    "WITH customers AS (SELECT * FROM order_items) SELECT * FROM customers",
    # a non-recursive CTE does not see itself: its own name inside it is the table
    "WITH orders AS (SELECT * FROM orders) SELECT * FROM orders",
    # a recursive CTE whose seed reads another table
    "WITH RECURSIVE r AS (SELECT id FROM products UNION ALL SELECT id + 1 FROM r WHERE id < 3) SELECT * FROM r",
    # a CTE defined in a derived table does not reach the outer query
    "SELECT * FROM (WITH returns AS (SELECT 1 AS x) SELECT x FROM returns) t JOIN returns ON 1 = 1",
]
CTE_LEGITIMATE = [
    "WITH big AS (SELECT id, name FROM customers WHERE id > 10) SELECT COUNT(*) FROM big",
    "WITH a AS (SELECT id FROM customers), b AS (SELECT id FROM a WHERE id < 5) SELECT * FROM b",
    "WITH RECURSIVE n AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT * FROM n",
    "WITH customers AS (SELECT id FROM customers WHERE id < 5) SELECT COUNT(*) FROM customers",
    "SELECT name FROM customers WHERE id IN (WITH few AS (SELECT id FROM customers LIMIT 3) SELECT id FROM few)",
    "SELECT (WITH c AS (SELECT COUNT(*) AS n FROM customers) SELECT n FROM c) AS total",
    "SELECT c.country FROM customers c GROUP BY c.country "
    "HAVING COUNT(*) > (WITH k AS (SELECT COUNT(*) / 10 AS n FROM customers) SELECT n FROM k)",
    "WITH x AS (SELECT id FROM customers) SELECT * FROM x AS y JOIN customers ON customers.id = y.id",
]


@pytest.fixture
def narrow_guard(project_settings):
    return ReadOnlyGuard(["customers"], project_settings.sql.database)


@pytest.mark.parametrize("statement", CTE_BYPASSES)
def test_a_cte_name_hides_a_table_only_in_its_own_scope(narrow_guard, statement):
    with pytest.raises(SQLRefused, match="not one of the allowed tables") as refused:
        narrow_guard.check(statement)
    assert refused.value.table in {"order_items", "orders", "returns", "products"}


@pytest.mark.parametrize("statement", CTE_LEGITIMATE)
def test_ctes_over_allowed_tables_pass_and_run(business, narrow_guard, statement):
    checked = narrow_guard.check(statement)
    assert set(checked.tables) <= {"customers"}
    conn = MariaDBConnection(business)
    try:
        assert conn.fetchall(checked.sql)  # the rendering runs on the server, with rows
    finally:
        conn.dispose()


def test_a_table_written_in_another_case_runs_as_the_table_is_spelled(db, db_url):
    """MariaDB on Linux finds ``Artist``, not ``artist``: a statement naming it in lower case runs at
    its first attempt, rendered with the table's own spelling and aliased as written, so that its
    columns' qualifiers still name it. Where ``item`` and ``Item`` are both allowed, ``ITEM`` is not
    renamed (the statement fails as written) and each exact name stays as it is."""
    db.execute("CREATE TABLE Artist (ArtistId INT PRIMARY KEY, Name VARCHAR(40))")
    db.execute("INSERT INTO Artist VALUES (1, 'AC/DC'), (2, 'Accept')")
    llm = ScriptedLLM(["SELECT artist.Name FROM artist ORDER BY artist.ArtistId", "The answer."])
    engine = SQLEngine(llm, db, database=db_url.database, tables=["Artist"], candidates=1, rescue_samples=0)
    answer = sql_answer(engine, "Which artists are there?")
    assert answer.rows == [{"Name": "AC/DC"}, {"Name": "Accept"}]
    assert answer.sql == "SELECT artist.Name FROM Artist AS artist ORDER BY artist.ArtistId"
    assert [a.error for a in answer.attempts] == [None]
    twins = ReadOnlyGuard(["item", "Item", "Artist"])
    assert twins.check("SELECT * FROM ITEM").sql == "SELECT * FROM ITEM"
    assert twins.check("SELECT * FROM Item JOIN item ON 1 = 1").sql == "SELECT * FROM Item JOIN item ON 1 = 1"
    assert twins.check("SELECT a.Name FROM ARTIST AS a").sql == "SELECT a.Name FROM Artist AS a"
