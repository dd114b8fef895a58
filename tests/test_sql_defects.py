"""Defects of statements that run (kb.engines.sql.checks): where each fires, and where it must not."""

from __future__ import annotations

import pytest
from helpers import described

from kb.engines.sql.checks import defects
from kb.engines.sql.schema import SchemaDescriber


def suggested_statement(defect: str) -> str:
    """The statement a defect suggests (``Defect.rewrite``: what the engine's rescue runs), which its
    message shows the model as written."""
    rewrite = getattr(defect, "rewrite", None)
    assert rewrite and rewrite in defect, defect
    return rewrite


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
        "SELECT COUNT(*) FROM emp WHERE dept_code LIKE 'S%'",  # a pattern: the value check leaves it alone
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


def test_a_named_value_compared_with_the_key_that_references_its_table_is_compared_through_it(routes_schema, db):
    sql = "SELECT COUNT(*) FROM routes r WHERE r.to_code = 'Paris'"
    [found] = defects(sql, routes_schema, question="How many routes go to Paris?")
    assert "'Paris' is not a value of routes.to_code" in found and "it is a value of ports.city" in found
    suggested = suggested_statement(found)
    assert (
        suggested == "SELECT COUNT(*) FROM routes AS r WHERE r.to_code IN (SELECT code FROM ports WHERE city = 'Paris')"
    )
    assert db.fetchall(sql)[0][0] == 0 and db.fetchall(suggested)[0][0] == 3


def test_every_defect_names_the_check_that_found_it_and_a_skipped_check_finds_nothing(keyed_schema):
    from kb.engines.sql.checks import CHECK_NAMES

    sql = "SELECT e.id FROM invoices i JOIN employees e ON i.customer_id = e.id GROUP BY e.id"
    question = "Which employee has the most invoices?"
    found = defects(sql, keyed_schema, question=question)
    fired = {defect.check for defect in found}
    assert fired == {"unrelated keys", "not the rows asked"}, fired
    assert fired <= CHECK_NAMES
    remaining = defects(sql, keyed_schema, question=question, skip={"unrelated keys"})
    assert [defect.check for defect in remaining] == ["not the rows asked"]


def test_without_the_question_no_check_of_kind_question_runs(keyed_schema):
    """The registry's kinds: a statement a question check finds wrong for its question (ids where the
    question asks which customer) is left alone without the question, and a check that fires with
    it is of kind ``question``."""
    from kb.engines.sql.checks import CHECKS

    kinds = {check.name: check.kind for check in CHECKS}
    sql = "SELECT customer_id FROM invoices GROUP BY customer_id ORDER BY COUNT(*) DESC LIMIT 1"
    asked = defects(sql, keyed_schema, question="Which customer has the most invoices?")
    assert asked and all(kinds[defect.check] == "question" for defect in asked), [d.check for d in asked]
    assert defects(sql, keyed_schema) == []


# -- results no question can mean: statement-level checks ------------------------------------------------
@pytest.fixture
def shop_schema(db) -> SchemaDescriber:
    """Customers with a country, orders placed on a date and shipped on another, support tickets
    opened at a time of day, returns of an order (no customer column of their own)."""
    return described(
        db,
        (
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(80), country VARCHAR(40), nation_id INT)",
            "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, ordered_on DATE, shipped_on DATE, "
            "total DECIMAL(8,2), FOREIGN KEY (customer_id) REFERENCES customers(id))",
            "CREATE TABLE returns (id INT PRIMARY KEY, order_id INT, reason VARCHAR(40), "
            "FOREIGN KEY (order_id) REFERENCES orders(id))",
            "CREATE TABLE tickets (id INT PRIMARY KEY, customer_id INT, opened_at DATETIME, closed_at DATETIME, "
            "midnight_at DATETIME, FOREIGN KEY (customer_id) REFERENCES customers(id))",
            "INSERT INTO customers VALUES (1, 'Ana', 'Japan', 1), (2, 'Bo', 'Peru', 2)",
            "INSERT INTO orders VALUES (1, 1, '2025-02-26', '2025-03-05', 10), (2, 2, '2025-03-01', '2025-03-02', 20)",
            "INSERT INTO returns VALUES (1, 1, 'broken')",
            "INSERT INTO tickets VALUES (1, 1, '2025-03-31 14:20:00', '2025-04-01 09:00:00', '2025-03-31 00:00:00'), "
            "(2, 2, '2025-03-02 08:05:00', NULL, '2025-03-02 00:00:00')",
        ),
        ["customers", "orders", "returns", "tickets"],
    )


@pytest.mark.parametrize(
    "sql, check, said",
    [
        (
            "SELECT c.country, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.total > 5",
            "arbitrary row",
            "selects c.country beside COUNT(*) without GROUP BY",
        ),
        (
            "SELECT ordered_on FROM orders ORDER BY COUNT(*) DESC LIMIT 1",
            "arbitrary row",
            "orders by COUNT(*) without GROUP BY",
        ),
        (
            "SELECT name FROM customers GROUP BY id ORDER BY COUNT(*) DESC LIMIT 1",
            "counts of one",
            "its key, so every group is one row and COUNT(*) is 1 for each",
        ),
        (
            "SELECT COUNT(*) FROM customers c JOIN orders o ON c.nation_id = c.nation_id",
            "compared with itself",
            "compares c.nation_id with itself",
        ),
        (
            "SELECT COUNT(*) FROM orders WHERE customer_id NOT IN (SELECT customer_id FROM returns WHERE reason = 'broken')",
            "outer column in a subquery",
            "the subquery on returns selects customer_id, which returns does not have: the server takes "
            "orders.customer_id of the outer row",
        ),
        (
            "SELECT AVG(o.shipped_on - o.ordered_on) FROM orders o",
            "dates subtracted",
            "subtracts two dates as numbers",
        ),
        (
            "SELECT COUNT(*) FROM tickets WHERE opened_at BETWEEN '2025-03-01' AND '2025-03-31'",
            "time bounded by a date",
            "ends at midnight of '2025-03-31'",
        ),
        (
            "SELECT COUNT(*) FROM tickets WHERE opened_at <= '2025-03-31'",
            "time bounded by a date",
            "ends at midnight of '2025-03-31'",
        ),
        (
            "SELECT COUNT(*) FROM tickets t WHERE t.opened_at = '2025-03-02'",
            "time bounded by a date",
            "matches only midnight of '2025-03-02'",
        ),
    ],
)
def test_a_result_no_question_can_mean_is_a_defect(db, shop_schema, sql, check, said):
    found = defects(sql, shop_schema)
    assert [d.check for d in found] == [check] and said in found[0], found


def test_the_rewrites_of_dates_are_right_on_the_rows(db, shop_schema):
    """The statements kb suggests answer what was meant: days between two dates, and every time of the
    month's last day."""
    (days,) = defects("SELECT o.shipped_on - o.ordered_on FROM orders o WHERE o.id = 1", shop_schema)
    assert db.fetchall("SELECT o.shipped_on - o.ordered_on FROM orders o WHERE o.id = 1")[0][0] == 79
    assert db.fetchall(suggested_statement(days))[0][0] == 7
    (march,) = defects(
        "SELECT COUNT(*) FROM tickets WHERE opened_at BETWEEN '2025-03-01' AND '2025-03-31'", shop_schema
    )
    assert db.fetchall("SELECT COUNT(*) FROM tickets WHERE opened_at BETWEEN '2025-03-01' AND '2025-03-31'")[0][0] == 1
    assert db.fetchall(suggested_statement(march))[0][0] == 2


@pytest.mark.parametrize(
    "sql",
    [
        # aggregates with GROUP BY, alone, in a window, in a subquery, or beside a column fixed to one value
        "SELECT c.country, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.country",
        "SELECT COUNT(*), AVG(total) FROM orders",
        "SELECT name, COUNT(*) OVER () FROM customers",
        "SELECT name FROM customers WHERE id = (SELECT MAX(customer_id) FROM orders)",
        "SELECT c.country, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.country = 'Japan'",
        "SELECT c.name, SUM(o.total) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 1",
        "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY COUNT(*) DESC LIMIT 1",
        # counts per key with the counted table joined; per a column that is not unique
        "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name "
        "ORDER BY COUNT(*) DESC LIMIT 1",
        "SELECT country, COUNT(*) FROM customers GROUP BY country",
        # a self-join's two aliases; two columns of one table
        "SELECT COUNT(*) FROM customers a JOIN customers b ON a.nation_id = b.nation_id AND a.id <> b.id",
        "SELECT COUNT(*) FROM orders WHERE shipped_on = ordered_on",
        # a subquery's own column; a correlation written on purpose; a derived table
        "SELECT COUNT(*) FROM orders WHERE id NOT IN (SELECT order_id FROM returns)",
        "SELECT COUNT(*) FROM orders o WHERE EXISTS (SELECT 1 FROM returns r WHERE r.order_id = o.id)",
        "SELECT COUNT(*) FROM orders WHERE customer_id IN (SELECT customer_id FROM (SELECT * FROM tickets) t)",
        # days counted as days; a date minus an interval; numbers subtracted
        "SELECT AVG(DATEDIFF(shipped_on, ordered_on)) FROM orders",
        "SELECT COUNT(*) FROM orders WHERE ordered_on > shipped_on - INTERVAL 3 DAY",
        "SELECT MAX(total) - MIN(total) FROM orders",
        "SELECT id - customer_id FROM orders",
        # dates on DATE columns; times bounded right; a column all of whose times are midnight
        "SELECT COUNT(*) FROM orders WHERE ordered_on BETWEEN '2025-03-01' AND '2025-03-31'",
        "SELECT COUNT(*) FROM tickets WHERE opened_at >= '2025-03-01' AND opened_at < '2025-04-01'",
        "SELECT COUNT(*) FROM tickets WHERE opened_at <= '2025-03-31 23:59:59'",
        "SELECT COUNT(*) FROM tickets WHERE DATE(opened_at) BETWEEN '2025-03-01' AND '2025-03-31'",
        "SELECT COUNT(*) FROM tickets WHERE midnight_at BETWEEN '2025-03-01' AND '2025-03-31'",
    ],
)
def test_right_statements_are_left_alone_by_the_result_checks(shop_schema, sql):
    assert defects(sql, shop_schema) == []


@pytest.fixture
def campus_schema(db) -> SchemaDescriber:
    """Departments offering courses; students majoring in a department; course sections."""
    return described(
        db,
        (
            "CREATE TABLE department (department_id INT PRIMARY KEY, name VARCHAR(40))",
            "CREATE TABLE course (course_id INT PRIMARY KEY, title VARCHAR(40), department_id INT, "
            "FOREIGN KEY (department_id) REFERENCES department(department_id))",
            "CREATE TABLE student (student_id INT PRIMARY KEY, name VARCHAR(40), major_id INT, "
            "FOREIGN KEY (major_id) REFERENCES department(department_id))",
            "CREATE TABLE section (section_id INT PRIMARY KEY, course_id INT, term VARCHAR(20), "
            "FOREIGN KEY (course_id) REFERENCES course(course_id))",
            "INSERT INTO department VALUES (1, 'Physics'), (2, 'History')",
            "INSERT INTO course VALUES (1, 'Optics', 1), (2, 'Waves', 1), (3, 'Rome', 2), (4, 'Heat', 1)",
            "INSERT INTO student VALUES (1, 'Ana', 1), (2, 'Bo', 2), (3, 'Cy', 2)",
            "INSERT INTO section VALUES (1, 1, '2025-Fall'), (2, 3, '2025-Fall')",
        ),
        ["department", "course", "student", "section"],
    )


def test_a_join_that_multiplies_rows_and_is_read_nowhere_is_a_defect(db, campus_schema):
    sql = (
        "SELECT d.name FROM department AS d JOIN course AS c ON c.department_id = d.department_id "
        "JOIN student AS s ON s.major_id = d.department_id GROUP BY d.department_id, d.name "
        "ORDER BY COUNT(s.student_id) DESC LIMIT 1"
    )
    (found,) = defects(sql, campus_schema)
    assert found.check == "unused join that multiplies" and "joins course" in found
    assert db.fetchall(sql)[0][0] == "Physics"  # 1 student x 3 courses beats 2 students x 1 course
    assert db.fetchall(suggested_statement(found))[0][0] == "History"


@pytest.mark.parametrize(
    "sql",
    [
        # joined on a unique column: one row met per row
        "SELECT COUNT(*) FROM student s JOIN department d ON d.department_id = s.major_id",
        # the joined table is read: filtered, selected, grouped, or a bridge to another join
        "SELECT COUNT(*) FROM department d JOIN course c ON c.department_id = d.department_id WHERE c.title = 'Optics'",
        "SELECT d.name, COUNT(c.course_id) FROM department d JOIN course c ON c.department_id = d.department_id "
        "GROUP BY d.name",
        "SELECT COUNT(*) FROM department d JOIN course c ON c.department_id = d.department_id "
        "JOIN section x ON x.course_id = c.course_id WHERE x.term = '2025-Fall'",
        # distinct counts; no count or sum
        "SELECT COUNT(DISTINCT d.department_id) FROM department d JOIN course c ON c.department_id = d.department_id",
        "SELECT DISTINCT d.name FROM department d JOIN course c ON c.department_id = d.department_id",
    ],
)
def test_joins_that_are_read_or_do_not_multiply_are_left_alone(campus_schema, sql):
    assert defects(sql, campus_schema) == []


# A supplier offers many parts, a part is offered by many suppliers (part_supplier, keyed by both); a
# line names the offer it was bought under by both columns, and declares nothing else.
COMPOSITE_SCHEMA = (
    "CREATE TABLE part (id INT PRIMARY KEY, name VARCHAR(40))",
    "CREATE TABLE supplier (id INT PRIMARY KEY, name VARCHAR(40))",
    "CREATE TABLE part_supplier (part_id INT, supplier_id INT, cost DECIMAL(8,2), PRIMARY KEY (part_id, supplier_id), "
    "FOREIGN KEY (part_id) REFERENCES part(id), FOREIGN KEY (supplier_id) REFERENCES supplier(id))",
    "CREATE TABLE supplier_contact (supplier_id INT, contact_no INT, phone VARCHAR(20), "
    "PRIMARY KEY (supplier_id, contact_no), FOREIGN KEY (supplier_id) REFERENCES supplier(id))",
    "CREATE TABLE line (order_id INT, line_no INT, part_id INT, supplier_id INT, quantity INT, "
    "PRIMARY KEY (order_id, line_no), "
    "FOREIGN KEY (part_id, supplier_id) REFERENCES part_supplier(part_id, supplier_id))",
    "INSERT INTO part VALUES (1, 'bolt'), (2, 'nut')",
    "INSERT INTO supplier VALUES (1, 'Acme'), (2, 'Bolt Co')",
    "INSERT INTO part_supplier VALUES (1, 1, 2.00), (1, 2, 3.00), (2, 1, 1.00)",
    "INSERT INTO line VALUES (1, 1, 1, 1, 10), (1, 2, 1, 2, 5), (2, 1, 2, 1, 7)",
)
COMPOSITE_TABLES = ["part", "supplier", "part_supplier", "supplier_contact", "line"]


@pytest.fixture
def composite_schema(db) -> SchemaDescriber:
    return described(db, COMPOSITE_SCHEMA, COMPOSITE_TABLES)


def test_a_composite_reference_is_one_constraint_and_each_column_references_what_its_target_does(composite_schema):
    line = composite_schema.table("line")
    assert [(r.columns, r.table, r.referenced) for r in line.composite_references] == [
        (("part_id", "supplier_id"), "part_supplier", ("part_id", "supplier_id"))
    ]
    columns = {c.name: c for c in line.columns}
    assert columns["part_id"].references == ("part", "id")  # part_supplier.part_id references part(id)
    assert columns["supplier_id"].references == ("supplier", "id")
    ddl = composite_schema.describe("line")
    assert "FOREIGN KEY (part_id, supplier_id) REFERENCES part_supplier(part_id, supplier_id)" in ddl
    assert "part_id INT REFERENCES part(id)" in ddl
    assert "REFERENCES part_supplier(part_id)" not in ddl  # never half of the key as if it were a key


def test_a_join_on_part_of_a_composite_reference_gets_the_rest_of_the_key(composite_schema, db):
    partial = "SELECT SUM(l.quantity * ps.cost) FROM line l JOIN part_supplier ps ON ps.part_id = l.part_id"
    found = defects(partial, composite_schema)
    assert [d.check for d in found] == ["part of a composite reference"]
    assert "reference part_supplier by (part_id, supplier_id) together" in found[0]
    whole = suggested_statement(found[0])
    assert whole.endswith("ON ps.part_id = l.part_id AND ps.supplier_id = l.supplier_id")
    assert defects(whole, composite_schema) == []
    assert db.fetchall(partial)[0][0] > db.fetchall(whole)[0][0] == 2 * 10 + 3 * 5 + 1 * 7  # each line once

    in_where = "SELECT SUM(L.quantity) FROM line L, part_supplier ps WHERE L.part_id = ps.part_id AND ps.cost > 1"
    found = defects(in_where, composite_schema)
    assert len(found) == 1 and suggested_statement(found[0]).endswith("AND ps.supplier_id = L.supplier_id")
    db.fetchall(suggested_statement(found[0]))  # the alias as written: the server tells L from l


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT SUM(l.quantity * ps.cost) FROM line l JOIN part_supplier ps "
        "ON ps.part_id = l.part_id AND ps.supplier_id = l.supplier_id",
        "SELECT SUM(l.quantity) FROM line l, part_supplier ps WHERE ps.supplier_id = l.supplier_id "
        "AND l.part_id = ps.part_id",
        "SELECT p.name, SUM(l.quantity) FROM line l JOIN part p ON l.part_id = p.id GROUP BY p.id, p.name",  # the part
        "SELECT s.name FROM line l JOIN supplier s ON s.id = l.supplier_id",
        "SELECT p.name, ps.cost FROM part_supplier ps JOIN part p ON p.id = ps.part_id",  # a one-column reference
        "SELECT c.phone FROM part_supplier ps JOIN supplier_contact c ON c.supplier_id = ps.supplier_id",  # siblings
        "SELECT COUNT(*) FROM line a JOIN line b ON a.part_id = b.part_id",  # no table it references
    ],
)
def test_joins_along_a_whole_composite_reference_or_its_single_columns_have_no_defect(composite_schema, sql):
    assert defects(sql, composite_schema) == []


def test_ids_the_question_asks_for_by_their_columns_name_are_the_rows_asked(keyed_schema):
    """ "Which customers ...? Give their ids." names the column selected: no defect; without that
    sentence the ids answer "which customers" and the check fires."""
    sql = "SELECT customer_id FROM invoices GROUP BY customer_id HAVING COUNT(*) > 1"
    assert (
        defects(sql, keyed_schema, question="Which customers have more than one invoice? Give their customer ids.")
        == []
    )
    found = defects(sql, keyed_schema, question="Which customers have more than one invoice?")
    assert [d.check for d in found] == ["not the rows asked"]


def test_a_code_of_an_open_columns_form_that_no_row_holds_today_is_no_defect(db):
    """ "Customers from Norway": 'NO' has the form of every country code listed and no row holds it
    today, so no row is the answer. A made-up department code is still a defect (the departments
    table holds every code there is: tests above)."""
    schema = described(
        db,
        (
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40), country CHAR(2))",
            "INSERT INTO customers VALUES (1, 'Aalto', 'FI'), (2, 'Becker', 'DE'), (3, 'Tamm', 'EE')",
        ),
        ["customers"],
    )
    norway = "SELECT name FROM customers WHERE country = 'NO'"
    assert defects(norway, schema, question="Which customers are from Norway?") == []
    found = defects("SELECT name FROM customers WHERE country = 'Norway'", schema, question="Which are from Nor?")
    assert [d.check for d in found] == ["value of no column"]  # not of the codes' form


def test_the_servers_conversion_warning_is_a_check_of_the_registry_that_skip_checks_can_name():
    sql = "SELECT SUM(name) FROM customers"
    warning = "Truncated incorrect DOUBLE value: 'Aalto'"
    [found] = defects(sql, warning=warning)
    assert found.check == "server warning" and found.startswith(f"the server warned: {warning}")
    assert defects(sql, warning=warning, skip={"server warning"}) == []
    assert defects(sql) == []  # no warning kept: nothing to say


@pytest.fixture
def tagged_schema(db) -> SchemaDescriber:
    """A product's tags are a SET; its category a short listed text column."""
    return described(
        db,
        (
            "CREATE TABLE products (id INT PRIMARY KEY, category VARCHAR(20), tags SET('gift','sale','new'))",
            "INSERT INTO products VALUES (1, 'tools', 'gift,sale'), (2, 'toys', 'new'), (3, 'tools', '')",
        ),
        ["products"],
    )


def test_a_member_of_a_set_compared_with_another_column_is_a_defect_and_a_combination_of_members_is_not(
    tagged_schema,
):
    found = defects("SELECT COUNT(*) FROM products WHERE category = 'gift'", tagged_schema)
    assert [d.check for d in found] == ["value of another column"] and "products.tags" in found[0]
    for right in (
        "SELECT COUNT(*) FROM products WHERE tags = 'gift,sale'",
        "SELECT COUNT(*) FROM products WHERE tags = 'new'",
        "SELECT COUNT(*) FROM products WHERE FIND_IN_SET('gift', tags) > 0",
        "SELECT COUNT(*) FROM products WHERE category = 'tools'",
    ):
        assert defects(right, tagged_schema, question="How many products?") == [], right


def test_cut_ties_fires_only_when_the_engine_found_ties_past_the_limit():
    sql = "SELECT name FROM customers ORDER BY country LIMIT 1"
    [found] = defects(sql, cut_ties=(1, ["country"]))
    assert found.check == "cut ties" and "many more rows have the same country" in found
    assert defects(sql) == []  # no ties found past the limit: nothing to say
    assert defects(sql, cut_ties=(1, ["country"]), skip={"cut ties"}) == []


@pytest.fixture
def nations_schema(db) -> SchemaDescriber:
    """Customers of a nation; the nation table's names are listed (few), the customers' are not known."""
    customers = ", ".join(f"({i}, 'Customer#{i:03d}', {1 + i % 2}, '2025-03-{1 + i % 28:02d}')" for i in range(40))
    return described(
        db,
        (
            "CREATE TABLE nation (id INT PRIMARY KEY, name VARCHAR(25))",
            "CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(40), nation_id INT, joined_on DATE, "
            "FOREIGN KEY (nation_id) REFERENCES nation(id))",
            "INSERT INTO nation VALUES (1, 'JAPAN'), (2, 'GERMANY')",
            f"INSERT INTO customer VALUES {customers}",
        ),
        ["nation", "customer"],
    )


def test_a_like_pattern_no_row_of_its_column_matches_and_another_columns_values_do_is_a_defect(nations_schema):
    [found] = defects("SELECT COUNT(*) FROM customer c WHERE c.name LIKE 'Japan%'", nations_schema)
    assert found.check == "pattern of another column"
    assert "no value of customer.name is like 'Japan%'" in found and "nation.name are: 'JAPAN'" in found
    assert "JOIN nation ON nation.id = c.nation_id and compare nation.name" in found


def test_a_like_pattern_of_a_referenced_tables_names_on_a_code_column_is_a_defect(staff_schema):
    [found] = defects("SELECT COUNT(*) FROM emp WHERE dept_code LIKE '%Support%'", staff_schema)
    assert found.check == "pattern of another column" and "depts.dept_name are: 'Customer Support'" in found
    assert "JOIN depts ON depts.dept_code = emp.dept_code" in found


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM customer c JOIN nation n ON n.id = c.nation_id WHERE n.name LIKE 'Japan%'",
        "SELECT COUNT(*) FROM customer WHERE name LIKE 'Customer#01%'",  # rows of its own column match
        "SELECT COUNT(*) FROM customer WHERE name NOT LIKE 'Japan%'",  # matches every row
        "SELECT COUNT(*) FROM customer WHERE name LIKE 'Brazil%'",  # no column's values match either
        "SELECT COUNT(*) FROM customer WHERE joined_on LIKE '2025-03%'",  # a date column
        "SELECT COUNT(*) FROM customer WHERE nation_id LIKE '1%'",  # a number column
    ],
)
def test_like_patterns_their_column_matches_or_no_column_does_have_no_such_defect(nations_schema, sql):
    assert defects(sql, nations_schema) == []


# -- rows merged by a name they share ---------------------------------------------------------------------


@pytest.fixture
def library_schema(db) -> SchemaDescriber:
    """40 members with 30 names (members 0 and 30 are both 'Member 0'), a UNIQUE e-mail each and 3
    cities; 40 books with a title each; loans of a member: member 30 borrowed 3 books, member 0 two,
    every other member one, so 'Member 0' has 5 loans although no member has more than 3."""
    members = [(i, f"Member {i % 30}", f"m{i}@example.org", f"City {i % 3}") for i in range(40)]
    loans = [(i, i) for i in range(40)] + [(40, 30), (41, 30), (42, 0)]
    return described(
        db,
        (
            "CREATE TABLE members (id INT PRIMARY KEY, name VARCHAR(80), email VARCHAR(80) UNIQUE, city VARCHAR(40))",
            "CREATE TABLE books (id INT PRIMARY KEY, title VARCHAR(80))",
            "CREATE TABLE loans (id INT PRIMARY KEY, member_id INT, book_id INT, "
            "FOREIGN KEY (member_id) REFERENCES members(id), FOREIGN KEY (book_id) REFERENCES books(id))",
            "INSERT INTO members VALUES " + ", ".join(f"({i}, '{n}', '{e}', '{c}')" for i, n, e, c in members),
            "INSERT INTO books VALUES " + ", ".join(f"({i}, 'Book {i}')" for i in range(40)),
            "INSERT INTO loans VALUES " + ", ".join(f"({i}, {m}, {i % 40})" for i, m in loans),
        ),
        ["members", "books", "loans"],
    )


def merged(sql: str, schema: SchemaDescriber, question: str) -> list:
    return [d for d in defects(sql, schema, question=question) if d.check == "rows merged by a shared name"]


@pytest.mark.parametrize(
    ("sql", "grouped"),
    [
        (
            "SELECT m.name, COUNT(*) AS n FROM members m JOIN loans l ON l.member_id = m.id "
            "GROUP BY m.name ORDER BY n DESC LIMIT 1",
            "GROUP BY m.id, m.name",
        ),
        (
            "SELECT name, COUNT(*) AS n FROM members JOIN loans ON loans.member_id = members.id "
            "GROUP BY name ORDER BY n DESC LIMIT 1",
            "GROUP BY members.id, name",
        ),
        (  # grouped by a name and a column several members share too: still several members a group
            "SELECT m.name, m.city, COUNT(*) AS n FROM members m JOIN loans l ON l.member_id = m.id "
            "GROUP BY m.name, m.city ORDER BY n DESC LIMIT 1",
            "GROUP BY m.id, m.name, m.city",
        ),
    ],
)
def test_rows_grouped_by_a_name_they_share_where_the_question_asks_which_rows_are_a_defect(
    library_schema, db, sql, grouped
):
    found = merged(sql, library_schema, "Which member borrowed the most books?")
    assert len(found) == 1, found
    assert "several rows of members share" in found[0] and "the question asks which members" in found[0]
    rewrite = suggested_statement(found[0])
    assert grouped in rewrite, rewrite
    assert db.fetchall(sql)[0][-1] == 5  # two members' loans added up
    assert db.fetchall(rewrite)[0][0] == "Member 0" and db.fetchall(rewrite)[0][-1] == 3  # member 30 alone


@pytest.mark.parametrize(
    ("question", "sql"),
    [
        (  # grouped by the key as well
            "Which member borrowed the most books?",
            "SELECT m.name, COUNT(*) FROM members m JOIN loans l ON l.member_id = m.id GROUP BY m.id, m.name",
        ),
        (
            "Which member borrowed the most books?",
            "SELECT m.name, COUNT(*) FROM members m JOIN loans l ON l.member_id = m.id GROUP BY m.id",
        ),
        (  # another unique column tells the members apart
            "Which member borrowed the most books?",
            "SELECT m.name, COUNT(*) FROM members m JOIN loans l ON l.member_id = m.id GROUP BY m.email, m.name",
        ),
        (  # the question asks about the names themselves
            "How many members share each name?",
            "SELECT name, COUNT(*) FROM members GROUP BY name",
        ),
        (  # it asks which city: a column several members share, and no name
            "Which city has the most loans?",
            "SELECT m.city, COUNT(*) FROM members m JOIN loans l ON l.member_id = m.id GROUP BY m.city",
        ),
        (  # every book has its own title
            "Which book was borrowed most often?",
            "SELECT b.title, COUNT(*) FROM books b JOIN loans l ON l.book_id = b.id GROUP BY b.title",
        ),
        (  # it asks which books; the members' names are grouped within them
            "Which books were borrowed, and by whom?",
            "SELECT b.title, m.name FROM books b JOIN loans l ON l.book_id = b.id "
            "JOIN members m ON m.id = l.member_id GROUP BY b.id, m.name",
        ),
    ],
)
def test_groups_by_a_key_or_of_names_not_asked_for_have_no_such_defect(library_schema, question, sql):
    assert merged(sql, library_schema, question) == []
