"""Defects of statements that run (kb.engines.sql.checks): where each fires, and where it must not."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kb.engines.sql.checks import defects
from kb.engines.sql.english import asks_for_column
from kb.engines.sql.schema import SchemaDescriber


@pytest.mark.parametrize(
    "sql, named",
    [
        ("SELECT name FROM customers ORDER BY COUNT(*) DESC LIMIT 1", "COUNT(*)"),
        ("SELECT c.name, COUNT(o.id) FROM customers c JOIN orders o ON o.customer_id = c.id", "c.name"),
        ("SELECT city, MAX(total) FROM orders", "city"),
        ("SELECT name FROM products HAVING SUM(price) > 10", "SUM(price)"),
        ("SELECT x.n FROM (SELECT name AS n, AVG(price) FROM products) AS x", "AVG(price)"),  # the subquery's own
    ],
)
def test_an_aggregate_beside_plain_columns_without_group_by_is_a_defect(sql, named):
    found = defects(sql)
    assert len(found) == 1 and "without GROUP BY" in found[0] and named in found[0]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM orders",
        "SELECT MAX(total) - MIN(total), AVG(total) FROM orders WHERE status = 'placed'",
        "SELECT city, COUNT(*) FROM customers GROUP BY city ORDER BY COUNT(*) DESC LIMIT 1",
        "SELECT c.name, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name",
        "SELECT name FROM products WHERE price = (SELECT MAX(price) FROM products)",
        "SELECT name, (SELECT COUNT(*) FROM orders o WHERE o.customer_id = c.id) AS n FROM customers c",
        "SELECT name, COUNT(*) OVER () AS total FROM customers",
        "SELECT 'all', COUNT(*) FROM orders",
        "SELECT COUNT(DISTINCT customer_id) FROM orders",
        "SELECT name FROM customers ORDER BY created_at DESC LIMIT 1",
    ],
)
def test_statements_without_a_collapsing_aggregate_have_no_defect(sql):
    assert defects(sql) == []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM orders o JOIN customers c ON o.customer_id = o.customer_id",
        "SELECT name FROM customers WHERE city = city",
        "SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = c.id AND o.status = 'placed'",
    ],
)
def test_a_column_compared_with_itself_is_a_defect(sql):
    found = defects(sql)
    assert sum("compares a column with itself" in f for f in found) == 1, found


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id JOIN returns r ON o.id = c.id",
        "SELECT COUNT(*) FROM orders o LEFT JOIN returns r ON o.status = 'delivered'",
        "SELECT COUNT(*) FROM orders o JOIN (SELECT order_id FROM returns) AS r ON o.id = o.customer_id",
    ],
)
def test_a_join_whose_condition_ignores_the_joined_table_is_a_defect(sql):
    found = [f for f in defects(sql) if "names none of its columns" in f]
    assert len(found) == 1, defects(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM orders o JOIN returns r ON r.order_id = o.id",
        "SELECT COUNT(*) FROM orders o JOIN returns r ON r.reason = 'damaged'",  # a filter on its own column
        "SELECT COUNT(*) FROM orders JOIN returns ON order_id = orders.id",  # unqualified: may be its own
        "SELECT COUNT(*) FROM orders o JOIN (SELECT order_id FROM returns) AS r ON r.order_id = o.id",
        "SELECT COUNT(*) FROM orders o JOIN returns r USING (id)",
        "SELECT COUNT(*) FROM orders o CROSS JOIN customers c",
        "SELECT COUNT(*) FROM orders o JOIN returns r ON o.id IN (SELECT r2.order_id FROM returns r2)",
        "SELECT COUNT(*) FROM customers c1 JOIN customers c2 ON c1.city = c2.city AND c1.id < c2.id",
    ],
)
def test_joins_whose_condition_names_the_joined_table_have_no_such_defect(sql):
    assert not [f for f in defects(sql) if "names none of its columns" in f]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM customers c1 JOIN customers c2 ON c1.city = c2.city AND c1.id < c2.id",
        "SELECT COUNT(*) FROM orders o JOIN customers c ON o.customer_id = c.id",
        "SELECT name FROM customers WHERE city = 'Hamburg'",
        "not a statement at all",
    ],
)
def test_comparisons_of_different_columns_or_values_have_no_defect(sql):
    assert defects(sql) == []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM flights WHERE scheduled < DATE_ADD(scheduled, INTERVAL '60' MINUTE)",
        "SELECT COUNT(*) FROM flights WHERE scheduled + INTERVAL 1 DAY > scheduled",
        "SELECT COUNT(*) FROM flights f WHERE f.scheduled >= TIMESTAMPADD(MINUTE, 30, f.scheduled)",
        "SELECT COUNT(*) FROM orders WHERE total > total - 5",
        "SELECT COUNT(*) FROM orders WHERE ordered_on < ADDDATE(ordered_on, 30)",
    ],
)
def test_a_column_compared_with_itself_moved_by_a_constant_is_a_defect(sql):
    found = defects(sql)
    assert sum("with itself moved by a constant" in f for f in found) == 1, found


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM flights WHERE actual > DATE_ADD(scheduled, INTERVAL 60 MINUTE)",
        "SELECT COUNT(*) FROM flights WHERE TIMESTAMPDIFF(MINUTE, scheduled, actual) > 60",
        "SELECT COUNT(*) FROM customers WHERE name <> TRIM(name)",  # untrimmed names: a real question
        "SELECT COUNT(*) FROM orders WHERE total > total * 2",  # not a shift (negative totals differ)
        "SELECT COUNT(*) FROM orders a JOIN orders b ON b.ordered_on < a.ordered_on + INTERVAL 7 DAY",
        "SELECT COUNT(*) FROM orders WHERE ordered_on < NOW() - INTERVAL 30 DAY",
    ],
)
def test_shifts_against_other_columns_or_values_have_no_such_defect(sql):
    assert not [f for f in defects(sql) if "moved by a constant" in f]


def test_a_shifted_self_comparison_names_the_tables_other_columns_of_its_kind(db):
    db.execute(
        "CREATE TABLE flights (id INT PRIMARY KEY, code VARCHAR(8), scheduled DATETIME, actual DATETIME, "
        "distance INT, fare DECIMAL(8,2))"
    )
    schema = SchemaDescriber(db, db.fetchall("SELECT DATABASE()")[0][0], ["flights"])
    [dates] = defects("SELECT COUNT(*) FROM flights WHERE scheduled < scheduled + INTERVAL 1 HOUR", schema)
    assert dates.endswith("(flights's other date/time columns: actual)")
    [numbers] = defects("SELECT COUNT(*) FROM flights f WHERE f.distance > f.distance - 100", schema)
    assert numbers.endswith("(flights's other number columns: fare)")  # not the key
    [text] = defects("SELECT COUNT(*) FROM flights WHERE code < code + 1", schema)
    assert text.endswith("or with a value")  # no columns named for a text column


def suggested_statement(defect: str) -> str:
    """The statement a defect suggests (``Defect.rewrite``: what the engine's rescue runs), which its
    message shows the model as written."""
    rewrite = getattr(defect, "rewrite", None)
    assert rewrite and rewrite in defect, defect
    return rewrite


def described(db, statements: Sequence[str], tables: list[str]) -> SchemaDescriber:
    """``tables``, created (and filled) by ``statements`` in the test's database, as kb describes them."""
    for statement in statements:
        db.execute(statement)
    return SchemaDescriber(db, db.fetchall("SELECT DATABASE()")[0][0], tables)


@pytest.fixture
def keyed_schema(db) -> SchemaDescriber:
    """Declared keys: customers' rep is an employee, invoices belong to customers, a one-to-one notes
    table keyed by its customer, invoice lines keyed by (invoice, line)."""
    return described(
        db,
        (
            "CREATE TABLE employees (id INT PRIMARY KEY, name VARCHAR(80), city VARCHAR(40))",
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(80), city VARCHAR(40), rep_id INT, "
            "FOREIGN KEY (rep_id) REFERENCES employees(id))",
            "CREATE TABLE invoices (id INT PRIMARY KEY, customer_id INT, FOREIGN KEY (customer_id) REFERENCES customers(id))",
            "CREATE TABLE customer_notes (customer_id INT PRIMARY KEY, note TEXT, "
            "FOREIGN KEY (customer_id) REFERENCES customers(id))",
            "CREATE TABLE invoice_lines (invoice_id INT, line_no INT, amount DECIMAL(8,2), PRIMARY KEY (invoice_id, line_no), "
            "FOREIGN KEY (invoice_id) REFERENCES invoices(id))",
        ),
        ["employees", "customers", "invoices", "customer_notes", "invoice_lines"],
    )


@pytest.mark.parametrize(
    "sql, said",
    [
        (
            "SELECT COUNT(*) FROM invoices i JOIN employees e ON i.customer_id = e.id",
            "pairs invoices.customer_id, which references customers.id, with employees.id, the key of another table; "
            "join customers ON customers.id = invoices.customer_id",
        ),
        (
            "SELECT COUNT(*) FROM invoices AS i JOIN customers AS c ON i.id = c.id",
            "pairs the keys of two tables, invoices and customers, that do not reference each other",
        ),
        (
            "SELECT SUM(amount) FROM invoice_lines JOIN customers ON invoice_id = customers.id",
            "pairs invoice_lines.invoice_id, which references invoices.id, with customers.id",
        ),
    ],
)
def test_a_join_of_keys_that_do_not_belong_together_is_a_defect(keyed_schema, sql, said):
    found = defects(sql, keyed_schema)
    assert len(found) == 1 and said in found[0]
    assert defects(sql) == []  # without the schema nothing is known of keys


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM invoices i JOIN customers c ON i.customer_id = c.id",
        "SELECT COUNT(*) FROM invoices JOIN customers ON customer_id = customers.id",  # unqualified, one owner
        "SELECT c.name FROM customers c JOIN customer_notes n ON n.customer_id = c.id",  # one-to-one
        "SELECT COUNT(*) FROM invoices i JOIN customer_notes n ON i.customer_id = n.customer_id",  # same target
        "SELECT SUM(l.amount) FROM invoice_lines l JOIN invoices i ON l.invoice_id = i.id",  # part of a two-column key
        "SELECT e.name FROM customers c JOIN employees e ON c.rep_id = e.id",
        "SELECT COUNT(*) FROM customers c JOIN employees e ON c.city = e.city",  # not keys
        "SELECT COUNT(*) FROM employees e1 JOIN employees e2 ON e1.id = e2.id",  # a self-join
        "SELECT COUNT(*) FROM customers c JOIN invoices i ON c.id = i.id + 0",  # not two columns
    ],
)
def test_joins_along_keys_or_not_on_keys_have_no_defect(keyed_schema, sql):
    assert defects(sql, keyed_schema) == []


@pytest.fixture
def counted_schema(db) -> SchemaDescriber:
    """Medications with a declared key, a UNIQUE code and names each held by one row (the data says so,
    not a constraint), a form several rows share; prescriptions reference medications."""
    return described(
        db,
        (
            "CREATE TABLE medications (id INT PRIMARY KEY, code CHAR(4) UNIQUE, name VARCHAR(40), form VARCHAR(20))",
            "CREATE TABLE prescriptions (id INT PRIMARY KEY, medication_id INT, quantity INT, "
            "FOREIGN KEY (medication_id) REFERENCES medications(id))",
            "INSERT INTO medications VALUES (1, 'A1', 'Ibuprofen', 'tablet'), (2, 'B2', 'Salbutamol', 'syrup'), "
            "(3, 'C3', 'Paracetamol', 'tablet')",
            "INSERT INTO prescriptions VALUES (1, 1, 10), (2, 1, 20), (3, 2, 10)",
        ),
        ["medications", "prescriptions"],
    )


@pytest.mark.parametrize(
    "sql, grouped",
    [
        ("SELECT name FROM medications GROUP BY name ORDER BY COUNT(*) DESC LIMIT 1", "name"),  # unique in the data
        ("SELECT m.id, COUNT(*) FROM medications m GROUP BY m.id", "id"),  # the key
        ("SELECT code FROM medications GROUP BY code HAVING COUNT(id) > 1", "code"),  # a UNIQUE column
    ],
)
def test_a_count_of_groups_that_are_single_rows_is_a_defect(counted_schema, sql, grouped):
    [found] = defects(sql, counted_schema)
    assert f"it groups medications by {grouped}, which is different in every row" in found
    assert found.endswith("(prescriptions.medication_id references medications)")
    assert defects(sql) == []  # without the schema nothing is known of uniqueness


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT m.name FROM medications m JOIN prescriptions p ON p.medication_id = m.id GROUP BY m.name "
        "ORDER BY COUNT(*) DESC LIMIT 1",  # the joined rows are counted
        "SELECT form, COUNT(*) FROM medications GROUP BY form",  # rows share a form
        "SELECT name, SUM(id) FROM medications GROUP BY name",  # not a count
        "SELECT COUNT(*) FROM (SELECT name FROM medications GROUP BY name) AS names",  # the count is outside
        "SELECT medication_id, COUNT(*) FROM prescriptions GROUP BY medication_id",  # a reference repeats
    ],
)
def test_counts_of_groups_of_several_rows_have_no_such_defect(counted_schema, sql):
    assert defects(sql, counted_schema) == []


RANKING = "SELECT insurer FROM patients GROUP BY insurer ORDER BY COUNT(*) DESC LIMIT 1"


def test_a_ranking_led_by_the_group_of_nulls_is_a_defect():
    [found] = defects(RANKING, rows=[{"insurer": None}])
    assert found.startswith("its first row is the group of rows whose insurer is NULL")
    assert "WHERE insurer IS NOT NULL" in found
    aliased = "SELECT p.insurer AS who, COUNT(*) AS n FROM patients p GROUP BY p.insurer ORDER BY n DESC LIMIT 2"
    assert defects(
        aliased.replace("ORDER BY n", "ORDER BY COUNT(*)"), rows=[{"who": None, "n": 9}, {"who": "A", "n": 3}]
    )


def test_a_list_of_groups_with_the_group_of_nulls_among_them_is_a_defect():
    listed = "SELECT method, SUM(amount) AS total FROM invoices GROUP BY method"
    [found] = defects(listed, rows=[{"method": "card", "total": 9.0}, {"method": None, "total": 4.0}])
    assert found.startswith("one of its rows is the group of rows whose method is NULL (no value), which is no method")
    assert "WHERE method IS NOT NULL" in found
    ranked = RANKING.replace(" LIMIT 1", "")  # an ORDER BY without a LIMIT lists every group
    assert defects(ranked, rows=[{"insurer": "OEGK"}, {"insurer": None}])


@pytest.mark.parametrize(
    "sql, rows",
    [
        (RANKING, [{"insurer": "OEGK"}]),  # a value leads
        (RANKING.replace(" LIMIT 1", ""), [{"insurer": "A"}, {"insurer": "OEGK"}]),  # every group listed, none NULL
        (  # the totals' rows of ROLLUP
            "SELECT insurer, COUNT(*) FROM patients GROUP BY insurer WITH ROLLUP",
            [{"insurer": "A", "n": 2}, {"insurer": None, "n": 2}],
        ),
        (  # the statement keeps the rows without a value on purpose
            "SELECT insurer, COUNT(*) FROM patients WHERE insurer IS NULL OR born > 1990 GROUP BY insurer",
            [{"insurer": "A", "n": 2}, {"insurer": None, "n": 2}],
        ),
        (  # NULL in an aggregate, not in a group key
            "SELECT insurer, MAX(left_on) FROM patients GROUP BY insurer",
            [{"insurer": "A", "m": None}],
        ),
        ("SELECT insurer, born FROM patients", [{"insurer": None, "born": 1990}]),  # no groups
        (RANKING.replace("LIMIT 1", "LIMIT 2"), [{"insurer": "OEGK"}, {"insurer": None}]),  # not first
        (
            "SELECT insurer, MAX(born) FROM patients GROUP BY insurer ORDER BY MAX(born) LIMIT 1",
            [{"insurer": "A", "m": None}],
        ),
        ("SELECT insurer FROM patients ORDER BY born LIMIT 1", [{"insurer": None}]),  # no groups, no aggregate
        (RANKING, []),  # no rows
    ],
)
def test_groups_without_a_null_group_first_or_listed_have_no_such_defect(sql, rows):
    assert defects(sql, rows=rows) == []


@pytest.mark.parametrize(
    "question, sql, ids",
    [
        (
            "Which customer has the most invoices?",
            "SELECT customer_id FROM invoices GROUP BY customer_id ORDER BY COUNT(*) DESC LIMIT 1",
            "invoices.customer_id",
        ),
        ("Which customers live in Oslo?", "SELECT c.id FROM customers c WHERE c.city = 'Oslo'", "customers.id"),
        (  # the count beside the id
            "Which customer has the most invoices?",
            "SELECT customer_id, COUNT(*) AS n FROM invoices GROUP BY customer_id ORDER BY n DESC LIMIT 1",
            "invoices.customer_id",
        ),
        ("Name the employee who looks after customer 3.", "SELECT rep_id AS who FROM customers WHERE id = 3", ""),
    ],
)
def test_ids_where_the_question_asks_which_rows_are_a_defect(keyed_schema, question, sql, ids):
    [found] = defects(sql, keyed_schema, question=question)
    if ids:
        assert found.startswith(f"it answers with {ids}, ids of customers, but the question asks which customers")
        assert "select customers.name" in found
    else:  # "the employee who": employees' rows are asked for
        assert "ids of employees" in found and "select employees.name" in found


@pytest.mark.parametrize(
    "question, sql",
    [
        (  # the name is selected too
            "Which customer has the most invoices?",
            "SELECT c.id, c.name FROM customers c JOIN invoices i ON i.customer_id = c.id GROUP BY c.id "
            "ORDER BY COUNT(*) DESC LIMIT 1",
        ),
        ("Which invoice is the latest?", "SELECT MAX(id) FROM invoices"),  # invoices have no name column
        ("Which invoices belong to customer 3?", "SELECT id FROM invoices WHERE customer_id = 3"),  # likewise
        ("What is the customer_id of invoice 7?", "SELECT customer_id FROM invoices WHERE id = 7"),  # asked by name
        (
            "How many invoices does each customer have?",
            "SELECT customer_id, COUNT(*) FROM invoices GROUP BY customer_id",
        ),
        ("Which customer has the most invoices?", "SELECT COUNT(*) FROM invoices"),  # not an id
    ],
)
def test_ids_where_no_row_names_are_asked_for_have_no_such_defect(keyed_schema, question, sql):
    assert defects(sql, keyed_schema, question=question) == []


LOOKS_AFTER_MOST = "FROM customers c JOIN employees e ON c.rep_id = e.id GROUP BY e.id ORDER BY COUNT(*) DESC LIMIT 1"


def test_another_tables_name_where_the_question_asks_which_rows_is_a_defect(keyed_schema):
    [found] = defects(
        f"SELECT c.name {LOOKS_AFTER_MOST}", keyed_schema, question="Which employee looks after most customers?"
    )
    assert found.startswith(
        "it answers with customers.name, a name of another table, where the question asks which employees"
    )
    assert "select employees.name" in found


@pytest.mark.parametrize(
    "question, sql",
    [
        ("Which employee looks after most customers?", f"SELECT e.name {LOOKS_AFTER_MOST}"),  # its own name
        ("Which employee looks after most customers?", f"SELECT c.rep_id, c.name {LOOKS_AFTER_MOST}"),  # its key too
        (  # two tables' rows asked for: the customers are named
            "Which customers are looked after by the employee with the most customers?",
            "SELECT c.name FROM customers c WHERE c.rep_id = 2",
        ),
        (  # a possessive: which rep
            "Which customer's rep lives in Oslo?",
            "SELECT e.name FROM employees e JOIN customers c ON c.rep_id = e.id WHERE e.city = 'Oslo'",
        ),
        ("Which employee looks after most customers?", f"SELECT CONCAT(c.name, '') {LOOKS_AFTER_MOST}"),
        ("How many customers does each employee look after?", f"SELECT c.name, COUNT(*) {LOOKS_AFTER_MOST}"),
    ],
)
def test_another_tables_name_where_it_is_asked_for_or_no_rows_are_has_no_such_defect(keyed_schema, question, sql):
    assert defects(sql, keyed_schema, question=question) == []


FREQUENT = "SELECT COUNT(*) FROM invoices WHERE customer_id IN (SELECT customer_id FROM invoices GROUP BY customer_id HAVING COUNT(*) > 3)"


def test_rows_counted_where_the_question_counts_what_they_belong_to_is_a_defect(keyed_schema):
    found = defects(FREQUENT, keyed_schema, question="How many customers have more than 3 invoices?")[0]
    assert found.startswith("it counts the rows of invoices whose customer_id is among the subquery's groups")
    assert "how many customers" in found and "COUNT(DISTINCT invoices.customer_id)" in found


@pytest.mark.parametrize(
    "question, sql",
    [
        ("How many invoices belong to customers with more than 3 invoices?", FREQUENT),  # invoices counted
        (
            "How many customers have more than 3 invoices?",
            FREQUENT.replace("COUNT(*) FROM", "COUNT(DISTINCT customer_id) FROM", 1),
        ),
        (  # the members come from another table
            "How many customers live in Oslo?",
            "SELECT COUNT(*) FROM invoices WHERE customer_id IN (SELECT id FROM customers WHERE city = 'Oslo')",
        ),
        (  # no groups in the subquery
            "How many customers have invoices?",
            "SELECT COUNT(*) FROM invoices WHERE customer_id IN (SELECT customer_id FROM invoices)",
        ),
        ("How many customers have more than 3 invoices?", FREQUENT + " GROUP BY customer_id"),  # outer groups
        (
            "How many customers have more than 3 invoices?",
            "SELECT COUNT(*) FROM (SELECT customer_id FROM invoices GROUP BY customer_id HAVING COUNT(*) > 3) AS g",
        ),
    ],
)
def test_rows_counted_where_the_question_counts_them_has_no_such_defect(keyed_schema, question, sql):
    assert not [f for f in defects(sql, keyed_schema, question=question) if "among the subquery's groups" in f]


@pytest.mark.parametrize(
    "question, counted, asked",
    [
        ("How many customers does Ann look after?", "employees", "customers"),  # customers reference employees
        ("How many invoices did customers in Oslo get?", "customers", "invoices"),
    ],
)
def test_rows_of_another_table_counted_where_the_question_counts_a_table_is_a_defect(
    keyed_schema, question, counted, asked
):
    sql = f"SELECT COUNT(*) FROM {counted} WHERE {'name' if counted == 'employees' else 'city'} = 'x'"
    [found] = defects(sql, keyed_schema, question=question)
    assert found.startswith(f"it counts rows of {counted}, but the question asks how many {asked}")
    assert defects(sql, keyed_schema) == []  # without the question nothing says what is counted


@pytest.mark.parametrize(
    "question, sql",
    [
        ("How many customers live in Oslo?", "SELECT COUNT(*) FROM customers WHERE city = 'Oslo'"),  # the same table
        ("How many customers have invoices?", "SELECT COUNT(DISTINCT customer_id) FROM invoices"),  # references them
        ("How many customers have invoices?", "SELECT COUNT(*) FROM invoices"),  # its rows may stand for them
        (  # a join: the count is of the joined rows
            "How many customers does Ann look after?",
            "SELECT COUNT(*) FROM employees e JOIN customers c ON c.rep_id = e.id WHERE e.name = 'Ann'",
        ),
        (  # the count of the asked table, through a subquery on the other
            "How many customers does Ann look after?",
            "SELECT COUNT(*) FROM customers WHERE rep_id = (SELECT id FROM employees WHERE name = 'Ann')",
        ),
        ("How many cities have employees?", "SELECT COUNT(DISTINCT city) FROM employees"),  # no table counted
        ("How many customer notes are there?", "SELECT COUNT(*) FROM customer_notes"),  # "customer" a modifier
    ],
)
def test_counts_of_the_asked_table_or_of_rows_standing_for_it_have_no_such_defect(keyed_schema, question, sql):
    assert not [f for f in defects(sql, keyed_schema, question=question) if f.startswith("it counts rows of")]


@pytest.mark.parametrize(
    "question, sql, rewrite",
    [
        (
            "How many customers have invoices?",
            "SELECT COUNT(*) FROM invoices",
            "SELECT COUNT(DISTINCT customer_id) FROM invoices",
        ),
        (  # the members chosen by a subquery: still one invoice row each
            "How many customers live in Oslo?",
            "SELECT COUNT(*) AS n FROM invoices WHERE customer_id IN (SELECT id FROM customers WHERE city = 'Oslo')",
            "SELECT COUNT(DISTINCT customer_id) AS n FROM invoices WHERE customer_id IN",
        ),
    ],
)
def test_referencing_rows_counted_where_the_question_counts_the_table_they_reference_is_a_defect(
    keyed_schema, db, question, sql, rewrite
):
    [found] = [f for f in defects(sql, keyed_schema, question=question) if "counts rows of invoices where" in f]
    assert found.startswith("COUNT(*) counts rows of invoices where the question asks how many customers")
    assert found.rewrite is not None and found.rewrite.startswith(rewrite)
    db.execute("INSERT INTO customers VALUES (1, 'Ann', 'Oslo', NULL), (2, 'Bo', 'Oslo', NULL)")
    db.execute("INSERT INTO invoices VALUES (1, 1), (2, 1), (3, 2)")
    assert db.fetchall(sql) == [(3,)] and db.fetchall(found.rewrite) == [(2,)]  # three invoices, two customers


@pytest.mark.parametrize(
    "question, sql",
    [
        ("How many invoices are there?", "SELECT COUNT(*) FROM invoices"),  # the counted table's own rows
        ("How many customers have invoices?", "SELECT COUNT(DISTINCT customer_id) FROM invoices"),
        ("How many customers have notes?", "SELECT COUNT(*) FROM customer_notes"),  # one row per customer at most
        ("How many customers does invoice 3 name?", "SELECT COUNT(*) FROM invoices WHERE customer_id = 3"),  # fixed
        ("How many employees are there?", "SELECT COUNT(*) FROM invoices"),  # no column references employees
    ],
)
def test_referencing_rows_counted_where_they_are_asked_for_or_stand_one_for_each_have_no_such_defect(
    keyed_schema, question, sql
):
    assert not [f for f in defects(sql, keyed_schema, question=question) if "counts rows of invoices where" in f]
    assert not [f for f in defects(sql, keyed_schema, question=question) if "counts rows of customer_notes" in f]


@pytest.fixture
def dated_schema(db) -> SchemaDescriber:
    """Orders placed at times of day, shipped on days only (a DATETIME at midnight) and due on a DATE."""
    return described(
        db,
        (
            "CREATE TABLE orders (id INT PRIMARY KEY, placed DATETIME, shipped DATETIME, due DATE)",
            "INSERT INTO orders VALUES (1, '2025-07-31 14:05:00', '2025-08-01 00:00:00', '2025-08-10'), "
            "(2, '2025-07-02 09:00:00', '2025-07-03 00:00:00', '2025-07-20')",
        ),
        ["orders"],
    )


@pytest.mark.parametrize(
    "sql, said",
    [
        (
            "SELECT COUNT(*) FROM orders WHERE placed BETWEEN '2025-07-01' AND '2025-07-31'",
            "ends at 2025-07-31 00:00:00, but orders.placed holds times of day, so the rows of 2025-07-31 after "
            "midnight are left out; to include that day write placed >= '2025-07-01' AND placed < '2025-08-01'",
        ),
        (
            "SELECT COUNT(*) FROM orders o WHERE o.placed <= '2025-12-31' AND o.id > 0",
            "to include that day write o.placed < '2026-01-01'",
        ),
        ("SELECT COUNT(*) FROM orders WHERE '2025-02-28' >= placed", "write placed < '2025-03-01'"),
        (
            "SELECT id FROM orders WHERE placed = '2025-07-31'",
            "finds only the rows at 2025-07-31 00:00:00, but orders.placed holds times of day; for the rows of that "
            "day write DATE(placed) = '2025-07-31'",
        ),
    ],
)
def test_a_bare_date_ending_a_range_on_a_column_with_times_of_day_is_a_defect(dated_schema, sql, said):
    [found] = defects(sql, dated_schema)
    assert said in found
    assert defects(sql) == []  # without the schema nothing is known of the column's values


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM orders WHERE shipped BETWEEN '2025-07-01' AND '2025-07-31'",  # always at midnight
        "SELECT COUNT(*) FROM orders WHERE due BETWEEN '2025-07-01' AND '2025-07-31'",  # a DATE
        "SELECT COUNT(*) FROM orders WHERE placed BETWEEN '2025-07-01' AND '2025-07-31 23:59:59'",  # a time given
        "SELECT COUNT(*) FROM orders WHERE placed >= '2025-07-01' AND placed < '2025-08-01'",  # how a range ends
        "SELECT COUNT(*) FROM orders WHERE DATE(placed) = '2025-07-31'",  # a function of the column
        "SELECT COUNT(*) FROM orders WHERE placed >= '2025-07-31'",  # a start, not an end
        "SELECT COUNT(*) FROM orders WHERE DATE(placed) <= '2025-07-31'",
    ],
)
def test_ranges_that_keep_their_last_day_have_no_such_defect(dated_schema, sql):
    assert defects(sql, dated_schema) == []


@pytest.fixture
def staff_schema(db) -> SchemaDescriber:
    """Departments with a code and a name, staff, and a salary history keyed by employee and start."""
    return described(
        db,
        (
            "CREATE TABLE depts (dept_code CHAR(4) PRIMARY KEY, dept_name VARCHAR(40) NOT NULL)",
            "CREATE TABLE emp (emp_no INT PRIMARY KEY, last_name VARCHAR(30), dept_code CHAR(4) NOT NULL, "
            "exit_date DATE NULL, FOREIGN KEY (dept_code) REFERENCES depts (dept_code))",
            "CREATE TABLE salaries (emp_no INT NOT NULL, from_date DATE NOT NULL, to_date DATE NULL, amount INT, "
            "PRIMARY KEY (emp_no, from_date), FOREIGN KEY (emp_no) REFERENCES emp (emp_no))",
            "CREATE TABLE timesheets (ts_id INT PRIMARY KEY, emp_no INT NOT NULL, hrs DECIMAL(4, 2), "
            "FOREIGN KEY (emp_no) REFERENCES emp (emp_no))",
            "INSERT INTO depts VALUES ('ENG', 'Engineering'), ('SUP', 'Customer Support')",
            "INSERT INTO emp VALUES (1, 'Patel', 'ENG', NULL), (2, 'Jones', 'SUP', NULL), (3, 'Khan', 'SUP', '2024-05-01')",
            "INSERT INTO salaries VALUES (1, '2020-01-01', '2023-01-01', 50000), (1, '2023-01-01', NULL, 56000), "
            "(2, '2021-03-01', NULL, 41000), (3, '2019-02-01', '2024-05-01', 39000)",
            "INSERT INTO timesheets VALUES (1, 1, 7.5), (2, 1, 4.0)",
        ),
        ["depts", "emp", "salaries", "timesheets"],
    )


@pytest.mark.parametrize(
    "sql, said",
    [
        (
            "SELECT COUNT(*) FROM timesheets WHERE NOT emp_no IN (SELECT emp_no FROM timesheets)",
            "NOT emp_no IN (SELECT emp_no FROM timesheets) is false for every row of timesheets: the subquery lists "
            "the emp_no of every row it tests; the rows with no timesheets row are those of emp (which emp_no "
            "references): SELECT ... FROM emp WHERE emp_no NOT IN (SELECT emp_no FROM timesheets)",
        ),
        (
            "SELECT COUNT(*) FROM timesheets t WHERE t.emp_no NOT IN (SELECT emp_no AS e FROM timesheets)",
            "is false for every row of timesheets",
        ),
    ],
)
def test_a_not_in_over_the_rows_it_tests_is_a_defect(staff_schema, db, sql, said):
    [found] = defects(sql, staff_schema)
    assert said in found
    assert db.fetchall(sql)[0][0] == 0  # whatever the data: the defect is real


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM emp WHERE emp_no NOT IN (SELECT emp_no FROM timesheets)",  # another table
        "SELECT COUNT(*) FROM timesheets WHERE emp_no NOT IN (SELECT emp_no FROM timesheets WHERE hrs > 5)",
        "SELECT COUNT(*) FROM timesheets WHERE emp_no NOT IN (SELECT ts_id FROM timesheets)",  # another column
        "SELECT COUNT(*) FROM timesheets WHERE emp_no IN (SELECT emp_no FROM timesheets)",  # no NOT
        "SELECT COUNT(*) FROM timesheets t JOIN emp e ON e.emp_no = t.emp_no "
        "WHERE t.emp_no NOT IN (SELECT emp_no FROM timesheets)",  # the outer query is a join
    ],
)
def test_not_in_over_other_rows_has_no_such_defect(staff_schema, sql):
    assert defects(sql, staff_schema) == []


@pytest.mark.parametrize(
    "sql, said",
    [
        (
            "SELECT COUNT(*) FROM emp WHERE dept_code = 'Customer Support'",
            "'Customer Support' is not a value of emp.dept_code (its values: 'SUP', 'ENG'), so it matches no row in "
            "dept_code = 'Customer Support'; it is a value of depts.dept_name: JOIN depts ON depts.dept_code = "
            "emp.dept_code and compare depts.dept_name",
        ),
        (
            "SELECT last_name FROM emp e WHERE e.dept_code IN ('ENG', 'Customer Support')",
            "JOIN depts ON depts.dept_code = e.dept_code and compare depts.dept_name",
        ),
        ("SELECT COUNT(*) FROM emp WHERE 'Engineering' = dept_code", "it is a value of depts.dept_name"),
        (  # a table the statement does not read and the column does not reference
            "SELECT SUM(s.amount) FROM salaries s JOIN emp e ON e.emp_no = s.emp_no WHERE e.last_name = 'Engineering'",
            "'Engineering' is not a value of emp.last_name (its values: 'Jones', 'Khan', 'Patel'), so it matches no row "
            "in e.last_name = 'Engineering'; it is a value of depts.dept_name",
        ),
    ],
)
def test_a_value_of_another_column_compared_with_a_column_is_a_defect(staff_schema, sql, said):
    [found] = defects(sql, staff_schema)
    assert said in found


def test_a_name_compared_with_a_small_lookup_tables_key_is_given_its_key(staff_schema, db):
    sql = "SELECT COUNT(*) FROM emp WHERE dept_code = 'Customer Support'"
    [found] = defects(sql, staff_schema)
    assert "; or compare the key: 'Customer Support' is depts.dept_code 'SUP': " in found
    suggested = suggested_statement(found)
    assert suggested == "SELECT COUNT(*) FROM emp WHERE dept_code = 'SUP'"
    assert db.fetchall(sql)[0][0] == 0 and db.fetchall(suggested)[0][0] == 2
    [listed] = defects("SELECT COUNT(*) FROM emp WHERE dept_code IN ('ENG', 'Customer Support')", staff_schema)
    assert "or compare the key" not in listed  # several values: the join is the one suggestion


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM emp WHERE dept_code = 'SUP'",  # a value it holds
        "SELECT COUNT(*) FROM emp WHERE dept_code = 'sup'",  # compared without regard to case, as the server does
        "SELECT COUNT(*) FROM emp WHERE dept_code = 'Marketing'",  # no listed column holds it: no row may be right
        "SELECT COUNT(*) FROM emp e JOIN depts d ON d.dept_code = e.dept_code WHERE d.dept_name = 'Customer Support'",
        "SELECT COUNT(*) FROM emp WHERE dept_code LIKE '%Support%'",
    ],
)
def test_values_a_column_holds_or_no_column_holds_have_no_such_defect(staff_schema, sql):
    assert defects(sql, staff_schema) == []


@pytest.mark.parametrize(
    "question, sql",
    [
        ("What is the current salary of employee 1?", "SELECT amount FROM salaries WHERE emp_no = 1"),
        (
            "What do the staff of Customer Support earn now?",
            "SELECT SUM(s.amount) FROM salaries s JOIN emp e ON e.emp_no = s.emp_no WHERE e.dept_code = 'SUP'",
        ),
    ],
)
def test_the_present_asked_of_a_history_without_its_current_row_is_a_defect(staff_schema, db, question, sql):
    [found] = defects(sql, staff_schema, question=question)
    assert "each row of salaries is a period (key emp_no, from_date; to_date is NULL while it lasts)" in found
    assert found.endswith("the statement reads every period: the row in effect now has salaries.to_date IS NULL")
    assert len(db.fetchall(sql)) >= 1  # it ran, on every period


def test_the_present_asked_of_a_history_read_for_its_ended_periods_is_a_defect(staff_schema):
    """A correction told to keep the current row wrote the opposite."""
    sql = "SELECT SUM(amount) FROM salaries s WHERE NOT s.to_date IS NULL"
    [found] = defects(sql, staff_schema, question="What is the current salary bill?")
    assert "keeps only the periods that have ended (to_date IS NOT NULL)" in found


@pytest.mark.parametrize(
    "question, sql",
    [
        (
            "What is the current salary of employee 1?",
            "SELECT amount FROM salaries WHERE emp_no = 1 AND to_date IS NULL",
        ),
        (
            "What is the salary now of employee 1?",
            "SELECT amount FROM salaries WHERE emp_no = 1 AND to_date > CURDATE()",
        ),
        ("What salaries has employee 1 had?", "SELECT amount FROM salaries WHERE emp_no = 1"),  # the whole history
        ("Which employees are currently employed?", "SELECT last_name FROM emp WHERE exit_date IS NULL"),  # no periods
        ("How many hours has employee 1 logged up to now?", "SELECT SUM(hrs) FROM timesheets WHERE emp_no = 1"),
    ],
)
def test_histories_read_with_their_end_or_not_asked_about_now_have_no_such_defect(staff_schema, question, sql):
    assert defects(sql, staff_schema, question=question) == []


def test_a_key_of_several_columns_is_shown_as_a_constraint_of_its_own(staff_schema):
    ddl = staff_schema.describe("salaries")
    assert "  emp_no INT NOT NULL REFERENCES emp(emp_no)," in ddl or "  emp_no INT REFERENCES emp(emp_no)," in ddl
    assert "PRIMARY KEY (emp_no, from_date)" in ddl
    assert "emp_no INT PRIMARY KEY" not in ddl and "from_date DATE PRIMARY KEY" not in ddl
    assert "  emp_no INT PRIMARY KEY," in staff_schema.describe("emp")  # a key of one column stays on it


@pytest.fixture
def rental_schema(db) -> SchemaDescriber:
    """Rentals with a status looked up by id, a customer by a text code and a booking clerk; staff
    with supervisors."""
    return described(
        db,
        (
            "CREATE TABLE statuses (status_id TINYINT PRIMARY KEY, status_name VARCHAR(20) NOT NULL)",
            "CREATE TABLE customers (code CHAR(4) PRIMARY KEY, company VARCHAR(40) NOT NULL)",
            "CREATE TABLE staff (staff_id INT PRIMARY KEY, last_name VARCHAR(30) NOT NULL, supervisor_id INT NULL, "
            "FOREIGN KEY (supervisor_id) REFERENCES staff (staff_id))",
            "CREATE TABLE methods (method_id INT PRIMARY KEY, method_name VARCHAR(20), short_name VARCHAR(8))",
            "CREATE TABLE rentals (rental_id INT PRIMARY KEY, customer_code CHAR(4) NOT NULL, status_id TINYINT NOT NULL, "
            "booked_by INT NOT NULL, method_id INT NOT NULL, FOREIGN KEY (customer_code) REFERENCES customers (code), "
            "FOREIGN KEY (status_id) REFERENCES statuses (status_id), FOREIGN KEY (booked_by) REFERENCES staff (staff_id), "
            "FOREIGN KEY (method_id) REFERENCES methods (method_id))",
            "INSERT INTO statuses VALUES (1, 'Reserved'), (2, 'On Hire'), (3, 'Returned'), (4, 'Cancelled')",
            "INSERT INTO customers VALUES ('AB01', 'Bakker Infra'), ('CD02', 'Claes Events')",
            "INSERT INTO staff VALUES (1, 'Peeters', NULL), (2, 'Jansen', 1), (3, 'Maes', 1)",
            "INSERT INTO methods VALUES (1, 'Customer Pickup', 'pickup'), (2, 'Van Delivery', 'van')",
            "INSERT INTO rentals VALUES (1, 'AB01', 1, 2, 1), (2, 'AB01', 4, 2, 2), (3, 'AB01', 3, 3, 2), "
            "(4, 'CD02', 4, 3, 1)",
            "CREATE TABLE invoices (invoice_id INT PRIMARY KEY, rental_id INT NOT NULL, amount DECIMAL(8, 2), "
            "FOREIGN KEY (rental_id) REFERENCES rentals (rental_id))",
            "INSERT INTO invoices VALUES (1, 1, 120.00), (2, 1, 30.00), (3, 3, 80.00), (4, 4, 55.00)",
        ),
        ["statuses", "customers", "staff", "methods", "rentals", "invoices"],
    )


def test_a_small_lookup_tables_ids_and_names_are_known_but_not_shown(rental_schema):
    label_column, labels = rental_schema.labels("statuses")
    assert labels == {"1": "Reserved", "2": "On Hire", "3": "Returned", "4": "Cancelled"}
    assert label_column == "status_name"
    assert rental_schema.labels("staff")[1] == {"1": "Peeters", "2": "Jansen", "3": "Maes"}
    assert rental_schema.labels("methods")[1] == {}  # two name columns: which one names a row?
    assert rental_schema.labels("customers")[1] == {}  # no name column
    assert rental_schema.labels("rentals")[1] == {}  # no name column either
    assert "'Cancelled'" not in rental_schema.describe("rentals")  # the schema text is unchanged


def test_an_id_of_another_value_than_the_question_names_is_a_defect(rental_schema, db):
    question = "How many rentals have been cancelled?"
    [found] = defects("SELECT COUNT(*) FROM rentals WHERE status_id = 1", rental_schema, question=question)
    assert "the question names 'Cancelled', a value of statuses.status_name" in found
    assert "compares rentals.status_id with the id 1, which is 'Reserved'; 'Cancelled' is 4" in found
    suggested = suggested_statement(found)
    assert suggested == "SELECT COUNT(*) FROM rentals WHERE status_id = 4"
    assert db.fetchall(suggested)[0][0] == 2  # the rows the question means


def test_a_guessed_id_where_the_question_names_the_rows_value_is_a_defect(rental_schema, db):
    question = "How many rentals were delivered by van delivery?"
    [found] = defects("SELECT COUNT(*) FROM rentals WHERE method_id = 3", rental_schema, question=question)
    assert "compares rentals.method_id with the id 3, which the question does not give" in found
    suggested = suggested_statement(found)
    assert suggested == (
        "SELECT COUNT(*) FROM rentals JOIN methods ON methods.method_id = rentals.method_id "
        "WHERE methods.method_name = 'Van Delivery'"
    )
    assert db.fetchall(suggested)[0][0] == 2


@pytest.mark.parametrize(
    "question, sql",
    [
        ("How many rentals have status 1?", "SELECT COUNT(*) FROM rentals WHERE status_id = 1"),  # the id is given
        ("How many rentals have been cancelled?", "SELECT COUNT(*) FROM rentals WHERE status_id = 4"),  # its id
        ("How many are reserved or cancelled?", "SELECT COUNT(*) FROM rentals WHERE status_id IN (4, 1)"),
        ("How many rentals were booked by clerk 2?", "SELECT COUNT(*) FROM rentals WHERE booked_by = 2"),
        ("How many rentals have the first status?", "SELECT COUNT(*) FROM rentals WHERE status_id = 1"),  # no name
        (
            "How many rentals have been cancelled?",  # the name is compared too
            "SELECT COUNT(*) FROM rentals r JOIN statuses s ON s.status_id = r.status_id "
            "WHERE s.status_name = 'Cancelled' AND r.status_id = 4",
        ),
        ("Which customer made the cancelled rental?", "SELECT customer_code FROM rentals WHERE rental_id = 2"),  # a key
    ],
)
def test_ids_the_question_gives_or_names_it_does_not_have_no_such_defect(rental_schema, question, sql):
    assert defects(sql, rental_schema, question=question) == []


def test_a_word_compared_with_a_number_column_is_a_defect(rental_schema, db):
    sql = "SELECT COUNT(*) FROM rentals WHERE status_id = 'Cancelled'"
    [found] = defects(sql, rental_schema)
    assert "'Cancelled' is not a value of rentals.status_id (a number column), so it matches no row" in found
    assert "it is a value of statuses.status_name: JOIN statuses ON statuses.status_id = rentals.status_id" in found
    assert "; or compare the key: 'Cancelled' is statuses.status_id 4: " in found
    suggested = suggested_statement(found)
    assert suggested == "SELECT COUNT(*) FROM rentals WHERE status_id = 4" and db.fetchall(suggested)[0][0] == 2
    assert db.fetchall(sql)[0][0] == 0  # the server reads the word as 0, without an error or a warning
    assert defects("SELECT COUNT(*) FROM rentals WHERE status_id = '4'", rental_schema) == []  # a number


def test_a_join_used_only_by_its_condition_that_repeats_rows_is_a_defect(rental_schema, db):
    sql = "SELECT c.company FROM customers c INNER JOIN rentals r ON r.customer_code = c.code WHERE c.code = 'AB01'"
    [found] = defects(sql, rental_schema)
    assert "the JOIN of rentals is used by nothing but its ON condition" in found
    assert "the one customers row the WHERE picks comes back once for every rentals row that references it" in found
    assert "joining them: " in found
    exact = suggested_statement(found)
    assert exact == (
        "SELECT c.company FROM customers AS c WHERE c.code = 'AB01' AND EXISTS(SELECT 1 FROM rentals AS r "
        "WHERE r.customer_code = c.code)"
    )
    assert len(db.fetchall(sql)) == 3 and db.fetchall(exact) == [("Bakker Infra",)]


def test_a_join_that_repeats_the_row_a_unique_name_picks_is_a_defect(rental_schema, db):
    sql = "SELECT c.code FROM customers c JOIN rentals r ON r.customer_code = c.code WHERE c.company = 'Bakker Infra'"
    [found] = defects(sql, rental_schema, question="Which customer code does Bakker Infra have?")
    assert "the one customers row the WHERE picks comes back once for every rentals row that references it" in found
    exact = suggested_statement(found)
    assert len(db.fetchall(sql)) == 3 and db.fetchall(exact) == [("AB01",)]


def test_a_self_join_used_only_by_its_condition_that_repeats_the_row_picked_is_a_defect(rental_schema, db):
    sql = "SELECT s1.last_name FROM staff s1 JOIN staff s2 ON s1.staff_id = s2.supervisor_id WHERE s1.staff_id = 1"
    [found] = defects(sql, rental_schema, question="What is the last name of staff member 1?")
    assert "the one staff row the WHERE picks comes back once for every staff row that references it" in found
    exact = suggested_statement(found)
    assert exact == (
        "SELECT s1.last_name FROM staff AS s1 WHERE s1.staff_id = 1 AND EXISTS(SELECT 1 FROM staff AS s2 "
        "WHERE s1.staff_id = s2.supervisor_id)"
    )
    assert db.fetchall(sql) == [("Peeters",), ("Peeters",)] and db.fetchall(exact) == [("Peeters",)]


def test_a_chain_of_joins_used_only_by_their_conditions_that_repeats_the_row_picked_is_a_defect(rental_schema, db):
    # kb's own repair wrote this (rental dev: "Which company has the customer code BAKK36?"): the customer's
    # company once per invoice of each of its rentals
    sql = (
        "SELECT c.company FROM customers c JOIN rentals r ON r.customer_code = c.code "
        "INNER JOIN invoices i ON i.rental_id = r.rental_id WHERE c.code = 'AB01'"
    )
    [found] = defects(sql, rental_schema, question="Which company has the customer code AB01?")
    assert "the JOIN of rentals is used by nothing but its ON condition and those of the joins of invoices to it" in (
        found
    )
    assert "the one customers row the WHERE picks comes back once for every rentals row" in found
    exact = suggested_statement(found)
    assert exact == (
        "SELECT c.company FROM customers AS c WHERE c.code = 'AB01' AND EXISTS(SELECT 1 FROM rentals AS r "
        "INNER JOIN invoices AS i ON i.rental_id = r.rental_id WHERE r.customer_code = c.code)"
    )
    assert len(db.fetchall(sql)) == 3 and db.fetchall(exact) == [("Bakker Infra",)]


@pytest.mark.parametrize(
    "sql",
    [
        # a table of the chain read elsewhere: its rows are used, and so are those of the join it hangs from
        "SELECT c.company, i.amount FROM customers c JOIN rentals r ON r.customer_code = c.code "
        "JOIN invoices i ON i.rental_id = r.rental_id WHERE c.code = 'AB01'",
        "SELECT c.company FROM customers c JOIN rentals r ON r.customer_code = c.code "
        "JOIN invoices i ON i.rental_id = r.rental_id WHERE c.code = 'AB01' AND i.amount > 100",
        "SELECT c.company FROM customers c JOIN rentals r ON r.customer_code = c.code "
        "JOIN invoices i ON i.rental_id = r.rental_id WHERE c.code = 'AB01' ORDER BY amount",
        # a list: no one customer picked
        "SELECT c.company FROM customers c JOIN rentals r ON r.customer_code = c.code "
        "JOIN invoices i ON i.rental_id = r.rental_id",
        # a LEFT JOIN keeps the rows: not a chain of inner joins
        "SELECT c.company, COUNT(i.invoice_id) FROM customers c JOIN rentals r ON r.customer_code = c.code "
        "LEFT JOIN invoices i ON i.rental_id = r.rental_id WHERE c.code = 'AB01' GROUP BY c.company",
    ],
)
def test_chains_of_joins_whose_rows_are_used_have_no_such_defect(rental_schema, sql):
    assert not [f for f in defects(sql, rental_schema) if "used by nothing but its ON" in f]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT c.company FROM customers c JOIN rentals r ON r.customer_code = c.code WHERE r.status_id = 4",
        "SELECT DISTINCT c.company FROM customers c JOIN rentals r ON r.customer_code = c.code",
        "SELECT c.company, r.rental_id FROM customers c JOIN rentals r ON r.customer_code = c.code",
        "SELECT r.rental_id FROM rentals r JOIN customers c ON c.code = r.customer_code",  # at most one customer each
        "SELECT COUNT(*) FROM customers c JOIN rentals r ON r.customer_code = c.code",  # the count is of the join
        "SELECT c.company FROM customers c JOIN rentals r ON r.customer_code = c.code",  # a list: no row picked
        # a column that rows share picks no one row: staff 2 and 3 both have supervisor 1
        "SELECT s.last_name FROM staff s JOIN rentals r ON r.booked_by = s.staff_id WHERE s.supervisor_id = 1",
        "SELECT c.company FROM customers c JOIN rentals r ON r.customer_code = c.code GROUP BY c.code, c.company",
        # self-joins: the joined alias filtered on; the join to the supervisor (at most one row each)
        "SELECT s1.last_name FROM staff s1 JOIN staff s2 ON s1.staff_id = s2.supervisor_id WHERE s2.staff_id = 2",
        "SELECT s1.last_name FROM staff s1 JOIN staff s2 ON s2.staff_id = s1.supervisor_id WHERE s1.staff_id = 2",
        "SELECT s1.last_name FROM staff s1 JOIN staff s2 ON s1.staff_id = s2.supervisor_id WHERE s1.staff_id = 1 "
        "AND s2.last_name = 'Maes'",
    ],
)
def test_joins_whose_rows_are_used_or_not_repeated_have_no_such_defect(rental_schema, sql):
    assert defects(sql, rental_schema) == []


def test_an_answer_the_statement_fixes_to_its_own_value_is_a_defect(rental_schema, db):
    sql = "SELECT s2.supervisor_id FROM staff s1 JOIN staff s2 ON s1.staff_id = s2.supervisor_id WHERE s1.staff_id = 1"
    [found] = defects(sql, rental_schema, question="Who supervises staff member 1?")
    assert "every row it returns has s2.supervisor_id = 1, a value the statement fixes itself" in found
    assert suggested_statement(found) == "SELECT supervisor_id FROM staff WHERE staff_id = 1"
    assert "(SELECT supervisor_id FROM staff WHERE staff_id = 1)" in found
    assert {row[0] for row in db.fetchall(sql)} == {1}  # whatever the data: only the value it was given
    # the fixed column is selected from the other alias: the message says which row, and writes no statement
    other_side = "SELECT r.booked_by FROM rentals r JOIN staff s ON s.staff_id = r.booked_by WHERE s.staff_id = 2"
    [told] = defects(other_side, rental_schema)
    assert "(SELECT ... FROM staff WHERE staff_id = 2)" in told and getattr(told, "rewrite", None) is None


def test_a_defect_that_writes_no_statement_suggests_none(rental_schema):
    [found] = defects("SELECT COUNT(*) FROM rentals r WHERE r.status_id = r.status_id", rental_schema)
    assert "compares a column with itself" in found and getattr(found, "rewrite", None) is None


def test_a_count_of_the_different_values_of_a_column_the_statement_fixes_is_a_defect(rental_schema, db):
    sql = (
        "SELECT COUNT(DISTINCT s2.supervisor_id) AS n FROM staff s1 JOIN staff s2 ON s1.staff_id = s2.supervisor_id "
        "WHERE s1.staff_id = 1"
    )
    [found] = defects(sql, rental_schema, question="How many staff members are supervised by staff member 1?")
    assert "COUNT(DISTINCT s2.supervisor_id) AS n counts the different values of s2.supervisor_id" in found
    assert (
        "which the statement fixes itself (s2.supervisor_id = s1.staff_id = 1): it is 1 whenever a row matches" in found
    )
    counting = suggested_statement(found)
    assert counting.startswith("SELECT COUNT(*) AS n FROM staff AS s1 JOIN staff AS s2")
    assert db.fetchall(sql) == [(1,)]  # whatever the data
    assert db.fetchall(counting) == db.fetchall("SELECT COUNT(*) FROM staff WHERE supervisor_id = 1") == [(2,)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT supervisor_id FROM staff WHERE staff_id = 2",
        "SELECT staff_id FROM staff WHERE staff_id = 2",  # fixed by its own condition: a test that the row exists
        "SELECT s2.last_name FROM staff s1 JOIN staff s2 ON s1.staff_id = s2.supervisor_id WHERE s1.staff_id = 1",
        "SELECT s2.supervisor_id FROM staff s1 LEFT JOIN staff s2 ON s1.staff_id = s2.supervisor_id "
        "WHERE s1.staff_id = 1",  # NULL where no row joins
        "SELECT r.booked_by FROM rentals r JOIN staff s ON s.staff_id = r.booked_by WHERE s.last_name = 'Maes'",
        # counts of different values: a column not fixed; fixed by its own condition alone; through an outer join
        "SELECT COUNT(DISTINCT s2.last_name) FROM staff s1 JOIN staff s2 ON s1.staff_id = s2.supervisor_id "
        "WHERE s1.staff_id = 1",
        "SELECT COUNT(DISTINCT supervisor_id) FROM staff WHERE supervisor_id = 1",
        "SELECT COUNT(DISTINCT s2.supervisor_id) FROM staff s1 LEFT JOIN staff s2 ON s1.staff_id = s2.supervisor_id "
        "WHERE s1.staff_id = 1",
        "SELECT COUNT(DISTINCT r.customer_code) FROM rentals r JOIN staff s ON s.staff_id = r.booked_by "
        "WHERE s.staff_id = 2",
    ],
)
def test_answers_the_conditions_do_not_fix_have_no_such_defect(rental_schema, sql):
    assert defects(sql, rental_schema) == []


def test_counts_of_groups_that_do_not_say_whose_they_are_are_a_defect(rental_schema, db):
    sql = "SELECT COUNT(*) FROM rentals GROUP BY customer_code HAVING COUNT(*) >= 1"
    rows = [{"COUNT(*)": n} for (n,) in db.fetchall(sql)]
    [found] = defects(sql, rental_schema, rows=rows)
    assert found.startswith("it returns 2 rows, one COUNT(*) per group of customer_code")
    wrapped = f"SELECT COUNT(*) FROM ({sql}) AS g"
    assert suggested_statement(found) == wrapped and db.fetchall(wrapped)[0][0] == 2


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT customer_code, COUNT(*) FROM rentals GROUP BY customer_code",  # says whose each count is
        "SELECT COUNT(*) FROM rentals",
        "SELECT COUNT(*) FROM rentals GROUP BY customer_code HAVING COUNT(*) > 2",  # one row: one number
    ],
)
def test_counts_that_say_whose_they_are_or_are_one_number_have_no_such_defect(rental_schema, db, sql):
    rows = [dict(enumerate(row)) for row in db.fetchall(sql)]
    assert defects(sql, rental_schema, rows=rows) == []


@pytest.fixture
def ticket_schema(db) -> SchemaDescriber:
    """Tickets with a status and the time each was opened (never NULL) and closed (NULL while open);
    CamelCase claims with the day each was filed."""
    return described(
        db,
        (
            "CREATE TABLE tickets (id INT PRIMARY KEY, priority ENUM('low','urgent') NOT NULL, "
            "status ENUM('open','pending','closed') NOT NULL, opened_at DATETIME NOT NULL, closed_at DATETIME NULL)",
            "CREATE TABLE Claims (ClaimID INT PRIMARY KEY, State ENUM('Filed','Paid','Rejected') NOT NULL, "
            "FiledOn DATE NOT NULL)",
        ),
        ["tickets", "Claims"],
    )


def test_a_state_compared_where_the_question_speaks_of_the_event_every_row_had_is_a_defect(ticket_schema):
    question = "How many urgent tickets were opened in 2025?"
    sql = "SELECT COUNT(*) FROM tickets WHERE status = 'open' AND priority = 'urgent' AND YEAR(opened_at) = 2025"
    [found] = defects(sql, ticket_schema, question=question)
    assert found.startswith("status = 'open' keeps only the tickets rows whose status is still 'open'")
    assert "every tickets row has its opened_at (never NULL)" in found
    assert found.endswith(": SELECT COUNT(*) FROM tickets WHERE priority = 'urgent' AND YEAR(opened_at) = 2025")
    [found] = defects(
        "SELECT COUNT(*) FROM Claims WHERE State = 'Filed'", ticket_schema, question="How many claims were filed?"
    )
    assert "every Claims row has its FiledOn (never NULL): every one was filed" in found


@pytest.mark.parametrize(
    "question, sql",
    [
        ("How many tickets are open?", "SELECT COUNT(*) FROM tickets WHERE status = 'open'"),  # the state asked
        (  # the state asked besides the event
            "How many tickets opened in 2025 are open?",
            "SELECT COUNT(*) FROM tickets WHERE YEAR(opened_at) = 2025 AND status = 'open'",
        ),
        ("How many claims filed in May are still filed?", "SELECT COUNT(*) FROM Claims WHERE State = 'Filed'"),
        (  # closed_at may be NULL: not every ticket was closed
            "How many tickets were closed in 2025?",
            "SELECT COUNT(*) FROM tickets WHERE status = 'closed' AND YEAR(closed_at) = 2025",
        ),
        ("How many tickets were opened?", "SELECT COUNT(*) FROM tickets WHERE status = 'pending'"),  # no such event
        ("How many claims were paid?", "SELECT COUNT(*) FROM Claims WHERE State = 'Paid'"),  # no PaidOn column
        ("How many tickets were opened?", "SELECT COUNT(*) FROM tickets WHERE status <> 'open'"),  # not this state
    ],
)
def test_states_compared_without_an_event_every_row_had_have_no_such_defect(ticket_schema, question, sql):
    assert defects(sql, ticket_schema, question=question) == []


@pytest.fixture
def timed_schema(db) -> SchemaDescriber:
    """Tracks whose length is a number of milliseconds, films whose running time is in minutes, and
    columns whose names state no unit of time (``min_price``: a minimum)."""
    return described(
        db,
        (
            "CREATE TABLE Track (TrackId INT PRIMARY KEY, Milliseconds INT NOT NULL, Bytes INT)",
            "CREATE TABLE films (id INT PRIMARY KEY, running_minutes INT, length INT, min_price INT)",
        ),
        ["Track", "films"],
    )


def test_an_amount_of_time_compared_in_another_unit_than_its_column_holds_is_a_defect(timed_schema):
    question = "How many tracks are longer than 5 minutes?"
    [found] = defects("SELECT COUNT(*) FROM Track WHERE Milliseconds > 50000", timed_schema, question=question)
    assert found == (
        "Track.Milliseconds holds an amount in milliseconds (its name says so); the question's 5 minutes is "
        "300000 of them, but the statement compares it with 50000: SELECT COUNT(*) FROM Track WHERE Milliseconds > 300000"
    )
    [found] = defects(
        "SELECT COUNT(*) FROM Track WHERE Milliseconds BETWEEN 180 AND 300",
        timed_schema,
        question="How many tracks are between 3 and 5 minutes long?",
    )
    assert "3 minutes is 180000 and 5 minutes is 300000 of them, but the statement compares it with 180, 300" in found
    [found] = defects(
        "SELECT COUNT(*) FROM films WHERE running_minutes > 2", timed_schema, question="Which films run over 2 hours?"
    )
    assert "the question's 2 hours is 120 of them" in found and found.endswith("WHERE running_minutes > 120")


@pytest.mark.parametrize(
    "question, sql",
    [
        ("How many tracks are longer than 5 minutes?", "SELECT COUNT(*) FROM Track WHERE Milliseconds > 300000"),
        (  # the issue's counterexample: converted right, both bounds
            "How many tracks are between 3 and 5 minutes long?",
            "SELECT COUNT(*) FROM Track WHERE Milliseconds >= 180000 AND Milliseconds <= 300000",
        ),
        ("How many tracks are longer than 300000?", "SELECT COUNT(*) FROM Track WHERE Milliseconds > 300000"),
        ("How many tracks are larger than 5 minutes?", "SELECT COUNT(*) FROM Track WHERE Bytes > 5"),  # no unit
        ("Which films are longer than 2 hours?", "SELECT id FROM films WHERE length > 2"),  # the name states none
        ("Which films cost at least 5 days' pay?", "SELECT id FROM films WHERE min_price >= 5"),  # min: a minimum
        ("Which films run over 90 minutes?", "SELECT id FROM films WHERE running_minutes > 90"),
    ],
)
def test_amounts_of_time_in_the_columns_unit_or_columns_without_one_have_no_such_defect(timed_schema, question, sql):
    assert defects(sql, timed_schema, question=question) == []


@pytest.mark.parametrize(
    "question, sql",
    [
        (
            "How many projects finished after their deadline?",
            "SELECT COUNT(*) FROM projects WHERE status = 'finished' AND deadline < CURRENT_DATE",
        ),
        (
            "How many leave requests were submitted less than 7 days before the first day of leave?",
            "SELECT COUNT(*) FROM leave_requests WHERE first_day < DATE_SUB(CURDATE(), INTERVAL 7 DAY)",
        ),
        ("Which orders were shipped within 3 days of being placed?", "SELECT id FROM orders WHERE shipped <= NOW()"),
        ("How many invoices were issued in 2025?", "SELECT COUNT(*) FROM invoices WHERE issued <= SYSDATE()"),
    ],
)
def test_todays_date_where_the_question_counts_no_time_from_today_is_a_defect(question, sql):
    [found] = defects(sql, question=question)
    assert found.startswith("it reads today's date (") and "the dates it speaks of are the rows' own" in found
    assert found.rewrite is None  # which dates were meant is the model's to say


@pytest.mark.parametrize(
    "question, sql",
    [
        (
            "How many orders were placed in the last 30 days?",
            "SELECT COUNT(*) FROM orders WHERE placed > NOW() - INTERVAL 30 DAY",
        ),
        ("Which invoices are overdue?", "SELECT id FROM invoices WHERE paid IS NULL AND due < CURDATE()"),
        ("Which customers are older than 60?", "SELECT name FROM customers WHERE birth < CURDATE() - INTERVAL 60 YEAR"),
        (
            "How many tickets were opened this week?",
            "SELECT COUNT(*) FROM tickets WHERE YEARWEEK(opened) = YEARWEEK(CURDATE())",
        ),
        (
            "What is the current price of product 4?",
            "SELECT price FROM prices WHERE product_id = 4 AND CURDATE() < until",
        ),
        ("Which subscriptions are still active?", "SELECT id FROM subscriptions WHERE ends > CURRENT_DATE"),
        ("How many orders were placed two days ago?", "SELECT COUNT(*) FROM orders WHERE DATE(placed) = CURDATE() - 2"),
        ("How many projects finished after their deadline?", "SELECT COUNT(*) FROM projects WHERE finished > deadline"),
    ],
)
def test_todays_date_where_the_question_counts_time_from_today_or_no_such_date_has_no_such_defect(question, sql):
    assert defects(sql, question=question) == []


def test_a_group_key_its_where_fixes_is_a_defect(db):
    db.execute("CREATE TABLE visits (id INT PRIMARY KEY, starts_at DATETIME NOT NULL)")
    db.execute(
        "INSERT INTO visits VALUES (1, '2025-01-05 10:00'), (2, '2025-01-20 11:00'), (3, '2025-02-03 09:00'), "
        "(4, '2024-01-09 10:00')"
    )
    sql = (
        "SELECT YEAR(starts_at) AS y, MONTH(starts_at) AS m, COUNT(*) AS visits FROM visits "
        "WHERE YEAR(starts_at) = 2025 GROUP BY y, m ORDER BY y, m"
    )
    [found] = defects(sql, question="How many visits were there in each month of 2025?")
    assert found.startswith(
        "it selects and groups by YEAR(starts_at), which its WHERE fixes (YEAR(starts_at) = 2025), so that column "
        "is 2025 in every row"
    )
    without = suggested_statement(found)
    assert without == (
        "SELECT MONTH(starts_at) AS m, COUNT(*) AS visits FROM visits WHERE YEAR(starts_at) = 2025 GROUP BY m ORDER BY m"
    )
    assert db.fetchall(sql) == [(2025, 1, 2), (2025, 2, 1)] and db.fetchall(without) == [(1, 2), (2, 1)]


@pytest.mark.parametrize(
    "sql",
    [
        # the only key grouped by; a fixed key not selected; a key only bounded; the only column selected
        "SELECT YEAR(d), COUNT(*) FROM visits WHERE YEAR(d) = 2025 GROUP BY YEAR(d)",
        "SELECT MONTH(d), COUNT(*) FROM visits WHERE YEAR(d) = 2025 GROUP BY YEAR(d), MONTH(d)",
        "SELECT YEAR(d), MONTH(d), COUNT(*) FROM visits WHERE YEAR(d) >= 2025 GROUP BY YEAR(d), MONTH(d)",
        "SELECT YEAR(d) FROM visits WHERE YEAR(d) = 2025 GROUP BY YEAR(d), MONTH(d)",
        "SELECT YEAR(d), MONTH(d), COUNT(*) FROM visits WHERE YEAR(d) = 2025 GROUP BY YEAR(d), MONTH(d) WITH ROLLUP",
        "SELECT kind, MONTH(d), COUNT(*) FROM visits WHERE kind = 'a' OR YEAR(d) = 2025 GROUP BY kind, MONTH(d)",
    ],
)
def test_group_keys_the_where_does_not_fix_or_that_are_not_selected_have_no_such_defect(sql):
    assert defects(sql) == []


PRESCRIBED = "SELECT COUNT(*) FROM medications m JOIN prescriptions p ON p.medication_id = m.id"


@pytest.mark.parametrize(
    "question, sql, rewrite, joined_rows",
    [
        ("How many medications were prescribed?", PRESCRIBED, "COUNT(DISTINCT m.id)", 3),
        (
            "How many medications were prescribed in tens?",
            "SELECT COUNT(*) AS n FROM prescriptions JOIN medications ON medications.id = prescriptions.medication_id "
            "WHERE prescriptions.quantity = 10",
            "COUNT(DISTINCT medications.id) AS n",
            2,  # each once: the count is right on this data, the statement is not
        ),
    ],
)
def test_a_count_of_joined_rows_where_the_question_counts_the_table_they_reference_is_a_defect(
    counted_schema, db, question, sql, rewrite, joined_rows
):
    [found] = defects(sql, counted_schema, question=question)
    assert found.startswith("COUNT(*) counts the joined rows where the question asks how many medications")
    assert "prescriptions.medication_id references medications" in found
    assert found.rewrite is not None and rewrite in found.rewrite
    assert db.fetchall(sql) == [(joined_rows,)]
    assert db.fetchall(found.rewrite) == [(2,)]  # Ibuprofen and Salbutamol were prescribed: two medications
    assert defects(sql, counted_schema) == []  # without the question nothing says what is counted


@pytest.mark.parametrize(
    "question, sql",
    [
        (  # the rows counted are the referencing ones
            "How many prescriptions are for tablets?",
            "SELECT COUNT(*) FROM prescriptions p JOIN medications m ON m.id = p.medication_id WHERE m.form = 'tablet'",
        ),
        ("How many medications were prescribed?", PRESCRIBED.replace("COUNT(*)", "COUNT(DISTINCT m.id)")),
        ("How many medications were prescribed?", PRESCRIBED.replace("JOIN", "LEFT JOIN")),  # an outer join
        ("How many medications were prescribed?", PRESCRIBED + " WHERE p.id = 2"),  # one prescription picked
        ("How many medications were prescribed?", PRESCRIBED + " GROUP BY m.form"),  # counts per group
        ("How many tablets are there?", PRESCRIBED),  # the question counts no table
    ],
)
def test_counts_of_the_joined_rows_asked_for_or_of_one_row_each_have_no_such_defect(counted_schema, question, sql):
    assert defects(sql, counted_schema, question=question) == []


def test_an_id_where_the_question_asks_for_a_column_of_its_row_is_a_defect(rental_schema):
    question = "How many rentals does each customer have? Give the customer's company and the count."
    sql = "SELECT customer_code, COUNT(*) FROM rentals GROUP BY customer_code"
    [found] = defects(sql, rental_schema, question=question)
    assert found.startswith("the question asks for customers.company, and the statement answers with customer_code")
    assert "JOIN customers ON customers.code = customer_code and select customers.company" in found
    own_key = "SELECT c.code, COUNT(*) FROM customers c JOIN rentals r ON r.customer_code = c.code GROUP BY c.code"
    [told] = [f for f in defects(own_key, rental_schema, question=question) if "asks for customers.company" in f]
    assert "select company of the same row" in told


@pytest.mark.parametrize(
    "question, sql",
    [
        (  # the column asked is selected
            "How many rentals does each customer have? Give the customer's company and the count.",
            "SELECT c.company, COUNT(*) FROM rentals r JOIN customers c ON c.code = r.customer_code GROUP BY c.company",
        ),
        (  # no column asked by a possessive
            "How many rentals does each customer code have?",
            "SELECT customer_code, COUNT(*) FROM rentals GROUP BY customer_code",
        ),
        (  # the key itself is asked
            "How many rentals does each customer have? Give the customer's code and the count.",
            "SELECT customer_code, COUNT(*) FROM rentals GROUP BY customer_code",
        ),
        (  # an expression might compute what is asked
            "How many rentals does each customer have? Give the customer's company and the count.",
            "SELECT CONCAT('code ', customer_code), COUNT(*) FROM rentals GROUP BY customer_code",
        ),
        (  # no id of the table asked about is selected
            "Give the customer's company for each status.",
            "SELECT status_id, COUNT(*) FROM rentals GROUP BY status_id",
        ),
    ],
)
def test_answers_that_hold_the_column_asked_or_no_id_of_its_table_have_no_such_defect(rental_schema, question, sql):
    assert not [f for f in defects(sql, rental_schema, question=question) if "the question asks for" in f]


@pytest.mark.parametrize(
    "question, table, column, asked",
    [
        ("Give the employee's last name and the count.", "Employee", "LastName", True),
        ("List each support ticket's opened at date.", "support_tickets", "opened_at", True),
        ("What is the customer's name?", "customers", "customer_name", True),  # the column repeats its table
        ("What is the customer’s city?", "customers", "city", True),  # a typographic apostrophe
        ("Give the last name of each employee.", "Employee", "LastName", False),  # no possessive
        ("Give the employee's first name.", "Employee", "LastName", False),  # another column
        ("Give the manager's last name.", "Employee", "LastName", False),  # another noun
    ],
)
def test_a_column_asked_for_by_a_possessive(question, table, column, asked):
    assert asks_for_column(question, table, column) is asked


EACH = 'the question asks for "'


@pytest.mark.parametrize(
    "question, sql, phrase, meant",
    [
        ("How many rentals did each customer make?", "SELECT COUNT(*) FROM rentals", "each customer", "customers"),
        (
            "What is the total invoiced for each rental?",
            "SELECT SUM(amount) FROM invoices",
            "each rental",
            "the rows of rentals",
        ),
        (  # a table's name, one word between
            "How many rentals are there for each delivery method?",
            "SELECT COUNT(*) FROM rentals r JOIN methods m ON m.method_id = r.method_id",
            "each delivery method",
            "the rows of methods",
        ),
        (  # a column's values
            "How many rentals were booked by staff of each last name?",
            "SELECT COUNT(*) FROM rentals r JOIN staff s ON s.staff_id = r.booked_by",
            "each last name",
            "staff.last_name",
        ),
        (
            "How many rentals were booked in each month of 2024?",
            "SELECT COUNT(*) FROM rentals WHERE rental_id > 2",
            "each month",
            "the period of the date column",
        ),
        (
            "Does every staff member have a supervisor?",
            "SELECT COUNT(*) FROM staff WHERE supervisor_id IS NULL",
            "",
            "",
        ),
    ],
)
def test_one_figure_where_the_question_asks_for_each_item_is_a_defect(rental_schema, question, sql, phrase, meant):
    found = [f for f in defects(sql, rental_schema, question=question) if f.startswith(EACH)]
    if not phrase:  # "every" alone (without "for") may ask whether all of them do: not read
        assert found == [], found
        return
    assert len(found) == 1 and f'"{phrase}"' in found[0] and "without GROUP BY" in found[0], found
    assert meant in found[0]


@pytest.mark.parametrize(
    "question, sql",
    [
        (
            "How many rentals did each customer make?",
            "SELECT customer_code, COUNT(*) FROM rentals GROUP BY customer_code",
        ),
        (  # the groups are counted in a subquery, and one figure is asked of them
            "What is the most rentals made by each customer?",
            "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM rentals GROUP BY customer_code) AS g",
        ),
        (  # a ratio of totals is one figure per customer already
            "What is the average number of rentals for each customer?",
            "SELECT COUNT(*) / COUNT(DISTINCT customer_code) FROM rentals",
        ),
        ("List each customer's company.", "SELECT company FROM customers"),  # no aggregate
        (
            "How many rentals has each customer made?",
            "SELECT customer_code, COUNT(*) OVER (PARTITION BY customer_code) FROM rentals",
        ),
        ("How many rentals are there?", "SELECT COUNT(*) FROM rentals"),  # no "each"
        ("How many rentals are there of each kind?", "SELECT COUNT(*) FROM rentals"),  # "kind": no table or column
        ("What is the revenue, counting price times quantity each?", "SELECT SUM(amount) FROM invoices"),
    ],
)
def test_figures_grouped_or_not_asked_for_each_item_have_no_such_defect(rental_schema, question, sql):
    assert not [f for f in defects(sql, rental_schema, question=question) if f.startswith(EACH)]


def test_a_value_no_column_holds_and_the_question_does_not_name_is_a_defect(staff_schema, db):
    """A code the model made up ('MKT' for "marketing") matches no row; the message lists the column's
    values and the join to the table it references."""
    sql = "SELECT COUNT(*) FROM emp WHERE dept_code = 'MKT'"
    [found] = defects(sql, staff_schema, question="How many staff work in marketing?")
    assert found == (
        "'MKT' is not a value of emp.dept_code (its values: 'SUP', 'ENG'), so it matches no row in "
        "dept_code = 'MKT'; compare it with one of those values, or JOIN depts ON depts.dept_code = "
        "emp.dept_code and compare the depts column that holds the question's value"
    )
    assert db.fetchall(sql)[0][0] == 0


@pytest.mark.parametrize(
    "question, sql",
    [
        ("How many staff are in department MKT?", "SELECT COUNT(*) FROM emp WHERE dept_code = 'MKT'"),  # named
        ("How many staff are in department mkt?", "SELECT COUNT(*) FROM emp WHERE dept_code = 'MKT'"),  # any case
        ("How many staff work outside marketing?", "SELECT COUNT(*) FROM emp WHERE dept_code <> 'MKT'"),
        (
            "How many staff work in engineering or marketing?",
            "SELECT COUNT(*) FROM emp WHERE dept_code IN ('ENG', 'MKT')",
        ),
        ("How many staff work in engineering?", "SELECT COUNT(*) FROM emp WHERE dept_code = 'eng'"),  # held
        ("How many staff named Smith are there?", "SELECT COUNT(*) FROM emp WHERE last_name = 'Smith'"),  # named
    ],
)
def test_values_the_question_names_or_the_column_holds_have_no_such_defect(staff_schema, question, sql):
    assert defects(sql, staff_schema, question=question) == []


def test_columns_without_a_value_in_common_compared_are_a_defect(staff_schema, db):
    sql = "SELECT COUNT(*) FROM emp e JOIN depts d ON d.dept_code = e.dept_code WHERE d.dept_name = e.dept_code"
    [found] = defects(sql, staff_schema)
    assert found.startswith("the condition d.dept_name = e.dept_code holds for no row: depts.dept_name")
    assert found.endswith("JOIN depts under another name ON its dept_code = e.dept_code and compare its dept_name")
    assert db.fetchall(sql)[0][0] == 0


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM emp e JOIN depts d ON d.dept_code = e.dept_code",  # values in common
        "SELECT COUNT(*) FROM emp e JOIN depts d ON d.dept_code = e.dept_code WHERE d.dept_name = 'Engineering'",
        "SELECT COUNT(*) FROM emp e JOIN timesheets t ON t.emp_no = e.emp_no WHERE t.hrs = e.emp_no",  # numbers
    ],
)
def test_columns_with_values_in_common_or_numbers_have_no_such_defect(staff_schema, sql):
    assert defects(sql, staff_schema) == []


@pytest.fixture
def trips_schema(db) -> SchemaDescriber:
    return described(
        db,
        (
            "CREATE TABLE trips (id INT PRIMARY KEY, left_at DATETIME NOT NULL, arrived_at DATETIME NOT NULL, "
            "booked_on DATE NOT NULL, paid_on DATE NOT NULL)",
            "INSERT INTO trips VALUES (1, '2025-03-01 08:00:00', '2025-03-01 09:30:00', '2025-02-01', '2025-02-03'), "
            "(2, '2025-03-02 22:00:00', '2025-03-03 01:00:00', '2025-02-10', '2025-02-10')",
        ),
        ["trips"],
    )


def test_whole_days_where_the_question_asks_minutes_of_times_of_day_are_a_defect(trips_schema, db):
    sql = "SELECT AVG(DATEDIFF(arrived_at, left_at)) FROM trips"
    [found] = defects(sql, trips_schema, question="How long did a trip take on average, in minutes?")
    assert found.startswith("DATEDIFF(arrived_at, left_at) counts whole days, but the question asks in minutes")
    suggested = suggested_statement(found)
    assert suggested == "SELECT AVG(TIMESTAMPDIFF(MINUTE, left_at, arrived_at)) FROM trips"
    assert float(db.fetchall(sql)[0][0]) == 0.5 and float(db.fetchall(suggested)[0][0]) == 135.0
    [hours] = defects(sql, trips_schema, question="How many hours did the trips take on average?")
    assert "TIMESTAMPDIFF(HOUR, left_at, arrived_at)" in hours


@pytest.mark.parametrize(
    "question, sql",
    [
        ("How long did a trip take on average, in days?", "SELECT AVG(DATEDIFF(arrived_at, left_at)) FROM trips"),
        ("How many minutes after booking was a trip paid?", "SELECT AVG(DATEDIFF(paid_on, booked_on)) FROM trips"),
        (
            "How long did a trip take on average, in minutes?",
            "SELECT AVG(TIMESTAMPDIFF(MINUTE, left_at, arrived_at)) FROM trips",
        ),
    ],
)
def test_days_asked_or_dates_without_times_or_minutes_counted_have_no_such_defect(trips_schema, question, sql):
    assert defects(sql, trips_schema, question=question) == []


@pytest.fixture
def routes_schema(db) -> SchemaDescriber:
    """Airports keyed by a text code, with a city and a country; routes and crews reference them."""
    return described(
        db,
        (
            "CREATE TABLE ports (code CHAR(3) PRIMARY KEY, city VARCHAR(40) NOT NULL, country VARCHAR(40) NOT NULL)",
            "INSERT INTO ports VALUES ('LIS', 'Lisbon', 'Portugal'), ('OPO', 'Porto', 'Portugal'), "
            "('CDG', 'Paris', 'France'), ('ORY', 'Paris', 'France'), ('MAD', 'Madrid', 'Spain')",
            "CREATE TABLE routes (id INT PRIMARY KEY, from_code CHAR(3) NOT NULL, to_code CHAR(3) NOT NULL, "
            "FOREIGN KEY (from_code) REFERENCES ports (code), FOREIGN KEY (to_code) REFERENCES ports (code))",
            "INSERT INTO routes VALUES (1, 'MAD', 'CDG'), (2, 'MAD', 'ORY'), (3, 'LIS', 'CDG'), (4, 'MAD', 'OPO')",
            "CREATE TABLE crews (id INT PRIMARY KEY, base CHAR(3) NOT NULL, FOREIGN KEY (base) REFERENCES ports (code))",
            "INSERT INTO crews VALUES (1, 'LIS'), (2, 'OPO'), (3, 'MAD'), (4, 'LIS')",
        ),
        ["ports", "routes", "crews"],
    )


def test_a_code_guessed_for_a_named_value_is_a_defect(routes_schema, db):
    question = "How many routes go from Madrid to Paris?"
    sql = "SELECT COUNT(*) FROM routes WHERE from_code = 'MAD' AND to_code = 'PAR'"
    found = defects(sql, routes_schema, question=question)
    assert found[0].startswith(
        "the question names 'Paris', a value of ports.city, but the statement compares routes.to_code with "
        "'PAR', and the ports rows whose city is 'Paris' have code 'CDG', 'ORY'"
    )  # the code of Madrid is right: only the guessed one is told
    suggested = suggested_statement(found[0])
    assert suggested == (
        "SELECT COUNT(*) FROM routes WHERE from_code = 'MAD' AND to_code IN (SELECT code FROM ports WHERE city = 'Paris')"
    )
    assert db.fetchall(sql)[0][0] == 0 and db.fetchall(suggested)[0][0] == 2
    # a held code, but one of the named value's rows only
    [some] = defects(
        "SELECT COUNT(*) FROM crews WHERE base = 'OPO'", routes_schema, question="How many crews are based in Portugal?"
    )
    assert db.fetchall(suggested_statement(some))[0][0] == 3


@pytest.mark.parametrize(
    "question, sql",
    [
        (
            "How many routes go from Madrid to Paris?",
            "SELECT COUNT(*) FROM routes WHERE from_code = 'MAD' AND to_code IN ('CDG', 'ORY')",
        ),
        ("How many crews are based in Porto?", "SELECT COUNT(*) FROM crews WHERE base = 'OPO'"),  # Porto's one port
        ("How many crews are based in Porto, Portugal?", "SELECT COUNT(*) FROM crews WHERE base = 'OPO'"),
        ("How many crews are based in Porto or Madrid?", "SELECT COUNT(*) FROM crews WHERE base IN ('MAD', 'OPO')"),
        ("How many crews are based at LIS?", "SELECT COUNT(*) FROM crews WHERE base = 'LIS'"),  # the code is given
        ("How many crews are based at OPO in Portugal?", "SELECT COUNT(*) FROM crews WHERE base = 'OPO'"),
        ("How many crews have the first base?", "SELECT COUNT(*) FROM crews WHERE base = 'LIS'"),  # no value named
        (
            "How many crews are based in Portugal?",  # the named value compared through the join
            "SELECT COUNT(*) FROM crews c JOIN ports p ON p.code = c.base WHERE p.country = 'Portugal'",
        ),
        ("How many crews are based in Portugal?", "SELECT COUNT(*) FROM crews WHERE id = 2"),  # a row's own key
    ],
)
def test_codes_of_the_named_rows_or_given_ones_have_no_such_defect(routes_schema, question, sql):
    assert not any("the question names" in said for said in defects(sql, routes_schema, question=question))


@pytest.mark.parametrize(
    "sql, suggested, counted",
    [
        ("SELECT COUNT(*) FROM t WHERE DAYOFWEEK(d) = 6", "SELECT COUNT(*) FROM t WHERE DAYOFWEEK(d) = 7", "Friday"),
        ("SELECT COUNT(*) FROM t WHERE WEEKDAY(d) = 6", "SELECT COUNT(*) FROM t WHERE WEEKDAY(d) = 5", "Sunday"),
    ],
)
def test_a_number_of_another_day_of_the_week_than_the_question_names_is_a_defect(sql, suggested, counted):
    [found] = defects(sql, question="How many trips started on a Saturday?")
    assert found.startswith(f"{sql.split('WHERE ')[1]} picks {counted}") and "asks about Saturday" in found
    assert suggested_statement(found) == suggested


@pytest.mark.parametrize(
    "question, sql",
    [
        ("How many trips started on a Saturday?", "SELECT COUNT(*) FROM t WHERE DAYOFWEEK(d) = 7"),
        ("How many trips started on Saturdays?", "SELECT COUNT(*) FROM t WHERE WEEKDAY(d) = 5"),
        ("How many trips started on Saturday or Sunday?", "SELECT COUNT(*) FROM t WHERE DAYOFWEEK(d) IN (1, 7)"),
        ("How many trips started at the end of the week?", "SELECT COUNT(*) FROM t WHERE DAYOFWEEK(d) = 6"),
        ("How many trips started on a Saturday?", "SELECT COUNT(*) FROM t WHERE MONTH(d) = 6"),
    ],
)
def test_days_of_the_week_numbered_right_or_not_named_have_no_such_defect(question, sql):
    assert defects(sql, question=question) == []


def test_a_named_value_compared_with_the_key_that_references_its_table_is_compared_through_it(routes_schema, db):
    sql = "SELECT COUNT(*) FROM routes r WHERE r.to_code = 'Paris'"
    [found] = defects(sql, routes_schema, question="How many routes go to Paris?")
    assert "'Paris' is not a value of routes.to_code" in found and "it is a value of ports.city" in found
    suggested = suggested_statement(found)
    assert (
        suggested == "SELECT COUNT(*) FROM routes AS r WHERE r.to_code IN (SELECT code FROM ports WHERE city = 'Paris')"
    )
    assert db.fetchall(sql)[0][0] == 0 and db.fetchall(suggested)[0][0] == 3


def test_a_date_the_question_does_not_give_is_a_defect(trips_schema, db):
    sql = "SELECT COUNT(*) FROM trips WHERE left_at LIKE '%2025-04-%' AND DAYOFWEEK(left_at) = 7"
    [found] = defects(sql, trips_schema, question="How many trips left on a Saturday?")
    assert found.startswith("left_at LIKE '%2025-04-%' compares a date with '%2025-04-%', which the question")
    suggested = suggested_statement(found)
    assert suggested == "SELECT COUNT(*) FROM trips WHERE DAYOFWEEK(left_at) = 7"
    assert db.fetchall(sql)[0][0] == 0 and db.fetchall(suggested)[0][0] == 1  # 2025-03-01 is a Saturday
    [alone] = defects(
        "SELECT COUNT(*) FROM trips WHERE YEAR(booked_on) = 2025", trips_schema, question="How many trips?"
    )
    assert suggested_statement(alone) == "SELECT COUNT(*) FROM trips"


@pytest.mark.parametrize(
    "question, sql",
    [
        ("How many trips were booked in 2025?", "SELECT COUNT(*) FROM trips WHERE YEAR(booked_on) = 2025"),
        ("How many trips were booked in March?", "SELECT COUNT(*) FROM trips WHERE booked_on LIKE '2025-03%'"),
        ("How many trips were booked this year?", "SELECT COUNT(*) FROM trips WHERE YEAR(booked_on) = 2025"),
        ("How many trips were booked each year?", "SELECT YEAR(booked_on), COUNT(*) FROM trips GROUP BY 1"),
        ("Which trips were paid late?", "SELECT id FROM trips WHERE paid_on > booked_on AND id <> 2025"),  # no date
        (
            "How many trips were booked before the first payment?",  # a date from the data
            "SELECT COUNT(*) FROM trips WHERE booked_on < (SELECT MIN(paid_on) FROM trips WHERE paid_on > '2000-01-01')",
        ),
    ],
)
def test_dates_the_question_gives_or_no_invented_date_have_no_such_defect(trips_schema, question, sql):
    assert not any("which the question does not give" in said for said in defects(sql, trips_schema, question=question))


def test_every_defect_names_the_check_that_found_it_and_a_skipped_check_finds_nothing(keyed_schema):
    from kb.engines.sql.checks import CHECK_NAMES

    sql = "SELECT c.name, COUNT(*) FROM customers c JOIN invoices i ON i.customer_id = i.customer_id"
    found = defects(sql, keyed_schema)
    fired = {defect.check for defect in found}
    assert fired == {"collapsing aggregate", "column compared with itself"}, fired
    assert fired <= CHECK_NAMES
    remaining = defects(sql, keyed_schema, skip={"collapsing aggregate"})
    assert [defect.check for defect in remaining] == ["column compared with itself"]


def test_without_the_question_no_check_of_kind_question_runs(counted_schema):
    """The registry's kinds: a statement a question check finds wrong for its question (a count of
    prescriptions where the question counts medications) is left alone without the question, and a
    check that fires with it is of kind ``question``."""
    from kb.engines.sql.checks import CHECKS

    kinds = {check.name: check.kind for check in CHECKS}
    sql = "SELECT COUNT(*) FROM prescriptions"
    asked = defects(sql, counted_schema, question="How many medications have been prescribed?")
    assert asked and all(kinds[defect.check] == "question" for defect in asked), [d.check for d in asked]
    assert defects(sql, counted_schema) == []
