"""kb's own repairs of statements the server refused (kb.engines.sql.repairs): where a join through
the tables between two tables is written, and where it must not be."""

from __future__ import annotations

import pytest
from helpers import described

from kb.engines.sql.repairs import StatementRepairs


@pytest.fixture
def lending(db) -> StatementRepairs:
    """A lending library: copies of books kept at branches, members of a branch, loans of a copy to a member."""
    statements = (
        "CREATE TABLE branches (id INT PRIMARY KEY, city VARCHAR(40))",
        "CREATE TABLE books (id INT PRIMARY KEY, title VARCHAR(80))",
        "CREATE TABLE members (id INT PRIMARY KEY, name VARCHAR(80), branch_id INT, "
        "FOREIGN KEY (branch_id) REFERENCES branches(id))",
        "CREATE TABLE copies (id INT PRIMARY KEY, book_id INT, branch_id INT, "
        "FOREIGN KEY (book_id) REFERENCES books(id), FOREIGN KEY (branch_id) REFERENCES branches(id))",
        "CREATE TABLE loans (id INT PRIMARY KEY, copy_id INT, member_id INT, "
        "FOREIGN KEY (copy_id) REFERENCES copies(id), FOREIGN KEY (member_id) REFERENCES members(id))",
    )
    return StatementRepairs(described(db, statements, ["branches", "books", "members", "copies", "loans"]))


def unknown(column: str) -> str:
    return f"(1054, \"Unknown column '{column}' in 'ON'\")"


@pytest.mark.parametrize(
    "sql, column, repaired",
    [
        (  # the joined table is the far one
            "SELECT b.title, COUNT(*) FROM books b JOIN loans l ON b.id = l.book_id GROUP BY b.id, b.title",
            "l.book_id",
            "SELECT b.title, COUNT(*) FROM books AS b JOIN copies ON copies.book_id = b.id "
            "JOIN loans AS l ON l.copy_id = copies.id GROUP BY b.id, b.title",
        ),
        (  # the joined table is the near one, the condition written the other way round
            "SELECT COUNT(*) FROM loans JOIN books ON loans.book_id = books.id WHERE books.title = 'Emma'",
            "loans.book_id",
            "SELECT COUNT(*) FROM loans JOIN copies ON copies.id = loans.copy_id "
            "JOIN books ON books.id = copies.book_id WHERE books.title = 'Emma'",
        ),
    ],
    ids=["far", "near"],
)
def test_two_tables_joined_as_neighbours_are_joined_through_the_table_between(lending, db, sql, column, repaired):
    assert lending.add_missing_join(sql, unknown(column)) == repaired
    db.fetchall(repaired)  # it runs


@pytest.mark.parametrize(
    "sql, column",
    [
        # two equally short chains (through members, through copies): which was meant is the model's call
        ("SELECT COUNT(*) FROM branches br JOIN loans l ON br.id = l.branch_id", "l.branch_id"),
        # the one chain passes through no table with the column the model wrote
        ("SELECT COUNT(*) FROM books b JOIN loans l ON b.id = l.title_id", "l.title_id"),
        # neighbours: the model named the key wrongly, not a table too few
        ("SELECT COUNT(*) FROM copies c JOIN loans l ON c.id = l.copy_ref", "l.copy_ref"),
        # correcting the qualifier would compare copies.book_id with itself
        ("SELECT COUNT(*) FROM copies c JOIN members m ON c.book_id = m.book_id", "m.book_id"),
        # an outer join: an inner chain would drop the books never lent
        ("SELECT b.title, COUNT(l.id) FROM books b LEFT JOIN loans l ON b.id = l.book_id GROUP BY b.id", "l.book_id"),
    ],
    ids=["two-chains", "not-through-the-column", "neighbours", "self-comparison", "outer-join"],
)
def test_no_repair_where_the_schema_does_not_decide_it(lending, sql, column):
    assert lending.add_missing_join(sql, unknown(column)) is None


def test_a_chain_through_a_table_the_query_already_uses_is_not_added(lending):
    sql = "SELECT COUNT(*) FROM books b JOIN copies c ON c.book_id = b.id JOIN loans l ON b.id = l.book_id"
    # nor the qualifier corrected: ON b.id = c.book_id would name none of loans' columns (a defect)
    assert lending.add_missing_join(sql, unknown("l.book_id")) is None


def test_a_key_named_after_the_column_that_references_it_is_replaced_by_the_referenced_key(lending, db):
    sql = "SELECT COUNT(*) FROM branches b JOIN members m ON b.branch_id = m.branch_id WHERE b.city = 'Oulu'"
    repaired = lending.add_missing_join(sql, unknown("b.branch_id"))
    assert (
        repaired == "SELECT COUNT(*) FROM branches AS b JOIN members AS m ON b.id = m.branch_id WHERE b.city = 'Oulu'"
    )
    db.fetchall(repaired)  # it runs


@pytest.mark.parametrize(
    "sql, column",
    [
        # members.branch_id references branches, not books: nothing says which key of books was meant
        ("SELECT COUNT(*) FROM books b JOIN members m ON b.branch_id = m.branch_id", "b.branch_id"),
        # the other side is no reference at all
        ("SELECT COUNT(*) FROM branches b JOIN members m ON b.member_name = m.name", "b.member_name"),
    ],
    ids=["references-another-table", "not-a-reference"],
)
def test_no_key_is_put_in_where_the_other_side_does_not_reference_the_table(lending, sql, column):
    assert lending.add_missing_join(sql, unknown(column)) is None


def test_every_column_the_schema_shows_misplaced_is_repaired_in_one_attempt(lending, db):
    """The server names only the first unknown column; the schema shows the second, so one repair
    mends both (the qualifier of m.city, then the key of b.branch_id)."""
    sql = "SELECT m.city, COUNT(*) FROM branches b JOIN members m ON b.branch_id = m.branch_id GROUP BY m.city"
    repaired = lending.add_missing_join(sql, "(1054, \"Unknown column 'm.city' in 'SELECT'\")")
    assert repaired == (
        "SELECT b.city, COUNT(*) FROM branches AS b JOIN members AS m ON b.id = m.branch_id GROUP BY b.city"
    )
    db.fetchall(repaired)


@pytest.fixture
def clinic(db) -> StatementRepairs:
    """Departments' doctors see appointments, which another doctor may have referred; each appointment
    has an invoice. Flights have a captain and a first officer, both pilots, and bookings."""
    statements = (
        "CREATE TABLE departments (id INT PRIMARY KEY, name VARCHAR(40))",
        "CREATE TABLE doctors (id INT PRIMARY KEY, department_id INT, FOREIGN KEY (department_id) REFERENCES departments(id))",
        "CREATE TABLE appointments (id INT PRIMARY KEY, doctor_id INT, referred_by_id INT, "
        "FOREIGN KEY (doctor_id) REFERENCES doctors(id), FOREIGN KEY (referred_by_id) REFERENCES doctors(id))",
        "CREATE TABLE invoices (id INT PRIMARY KEY, appointment_id INT, amount DECIMAL(8,2), "
        "FOREIGN KEY (appointment_id) REFERENCES appointments(id))",
        "CREATE TABLE pilots (id INT PRIMARY KEY, base VARCHAR(3))",
        "CREATE TABLE flights (id INT PRIMARY KEY, captain INT, first_officer INT, "
        "FOREIGN KEY (captain) REFERENCES pilots(id), FOREIGN KEY (first_officer) REFERENCES pilots(id))",
        "CREATE TABLE bookings (id INT PRIMARY KEY, flight_id INT, FOREIGN KEY (flight_id) REFERENCES flights(id))",
    )
    return StatementRepairs(
        described(
            db, statements, ["departments", "doctors", "appointments", "invoices", "pilots", "flights", "bookings"]
        )
    )


def test_of_two_chains_the_one_along_references_named_after_their_tables_is_joined(clinic, db):
    """Appointments reach doctors by doctor_id and by referred_by_id: the department of an invoice is its
    appointment's doctor's, the chain named after the tables it references."""
    sql = "SELECT d.name, AVG(i.amount) FROM departments d JOIN invoices i ON d.id = i.department_id GROUP BY d.name"
    repaired = clinic.add_missing_join(sql, unknown("i.department_id"))
    assert repaired == (
        "SELECT d.name, AVG(i.amount) FROM departments AS d JOIN doctors ON doctors.department_id = d.id "
        "JOIN appointments ON appointments.doctor_id = doctors.id JOIN invoices AS i ON i.appointment_id = "
        "appointments.id GROUP BY d.name"
    )
    db.fetchall(repaired)  # it runs


def test_two_chains_through_roles_are_left_to_the_model(clinic):
    """A flight's captain and first officer are both pilots, neither column named after pilots: which
    one a booking's pilot means is the model's call."""
    sql = "SELECT p.base, COUNT(*) FROM pilots p JOIN bookings b ON p.id = b.captain GROUP BY p.base"
    assert clinic.add_missing_join(sql, unknown("b.captain")) is None


@pytest.fixture
def staffing(db) -> StatementRepairs:
    """Employees are assigned to projects; each project has a lead, another employee (a role)."""
    statements = (
        "CREATE TABLE emp (emp_no INT PRIMARY KEY, last_name VARCHAR(30))",
        "CREATE TABLE projects (proj_id INT PRIMARY KEY, proj_name VARCHAR(40), lead_no INT, "
        "FOREIGN KEY (lead_no) REFERENCES emp (emp_no))",
        "CREATE TABLE assignments (emp_no INT, proj_id INT, role VARCHAR(20), PRIMARY KEY (emp_no, proj_id), "
        "FOREIGN KEY (emp_no) REFERENCES emp (emp_no), FOREIGN KEY (proj_id) REFERENCES projects (proj_id))",
        "INSERT INTO emp VALUES (1, 'Patel'), (2, 'Jones'), (3, 'Khan')",
        "INSERT INTO projects VALUES (10, 'Atlas', 1)",
        "INSERT INTO assignments VALUES (2, 10, 'developer'), (3, 10, 'tester')",
    )
    return StatementRepairs(described(db, statements, ["emp", "projects", "assignments"]))


def test_a_column_taken_from_a_table_linked_only_by_a_role_is_joined_along_the_other_tables_own_link(staffing, db):
    """``T1.last_name`` on projects, which reaches emp only through its lead; assignments, also in the
    query, reaches emp through emp_no: who is assigned is asked, so that is the join."""
    sql = (
        "SELECT T1.last_name FROM projects AS T1 JOIN assignments AS T2 ON T1.proj_id = T2.proj_id "
        "WHERE T2.role = 'developer' AND T1.proj_name = 'Atlas'"
    )
    repaired = staffing.add_missing_join(sql, unknown("T1.last_name"))
    assert repaired == (
        "SELECT emp.last_name FROM projects AS T1 JOIN assignments AS T2 ON T1.proj_id = T2.proj_id "
        "JOIN emp ON emp.emp_no = T2.emp_no WHERE T2.role = 'developer' AND T1.proj_name = 'Atlas'"
    )
    assert db.fetchall(repaired) == [("Jones",)]  # the developer, not the project's lead (Patel)


@pytest.mark.parametrize(
    "sql, joined",
    [
        # the table the column was taken from is the only one of the query: its role is the link
        ("SELECT T1.last_name FROM projects AS T1 WHERE T1.proj_name = 'Atlas'", "emp.emp_no = T1.lead_no"),
        # taken from the table with the named link: that one
        (
            "SELECT T2.last_name FROM projects AS T1 JOIN assignments AS T2 ON T1.proj_id = T2.proj_id",
            "emp.emp_no = T2.emp_no",
        ),
    ],
)
def test_the_table_the_column_was_taken_from_keeps_the_join_when_no_other_table_is_linked_by_name(
    staffing, sql, joined
):
    assert joined in staffing.add_missing_join(sql, unknown(sql.split()[1]))


def test_a_table_named_where_the_statement_aliased_it_gets_the_alias(lending, db):
    """The server knows an aliased table only by its alias: ``books.title`` beside ``books AS b`` is
    unknown to it; the alias is what was meant (an equivalent repair of a statement that could not run)."""
    sql = "SELECT books.title FROM loans l JOIN copies c ON c.id = l.copy_id JOIN books b ON b.id = c.book_id"
    repaired = lending.add_missing_join(sql, "(1054, \"Unknown column 'books.title' in 'SELECT'\")")
    assert repaired == (
        "SELECT b.title FROM loans AS l JOIN copies AS c ON c.id = l.copy_id JOIN books AS b ON b.id = c.book_id"
    )
    db.fetchall(repaired)  # it runs
    by_alias = "SELECT b.title FROM books AS b"  # already by its alias: the error is about something else
    assert lending.add_missing_join(by_alias, "(1054, \"Unknown column 'b.title' in 'SELECT'\")") is None


def ambiguous(column: str) -> str:
    return f"(1052, \"Column '{column}' in SELECT is ambiguous\")"


def test_a_column_every_joined_table_holds_tied_by_the_joins_is_qualified_with_the_first(lending, db):
    """``branch_id`` of members and of copies, equal in every row through the joins: either is the value."""
    db.execute("INSERT INTO branches VALUES (1, 'Oslo'), (2, 'Bergen')")
    db.execute("INSERT INTO members VALUES (1, 'Ann', 1), (2, 'Bo', 2)")
    db.execute("INSERT INTO books VALUES (1, 'Emma')")
    db.execute("INSERT INTO copies VALUES (1, 1, 1), (2, 1, 1), (3, 1, 2)")
    sql = (
        "SELECT COUNT(DISTINCT branch_id) FROM members m JOIN copies c ON c.branch_id = m.branch_id WHERE branch_id > 0"
    )
    repaired = lending.add_missing_join(sql, ambiguous("branch_id"))
    assert repaired == (
        "SELECT COUNT(DISTINCT m.branch_id) FROM members AS m JOIN copies AS c ON c.branch_id = m.branch_id "
        "WHERE m.branch_id > 0"
    )
    assert db.fetchall(repaired) == db.fetchall(
        repaired.replace("m.branch_id >", "c.branch_id >").replace("DISTINCT m.", "DISTINCT c.")
    )


@pytest.mark.parametrize(
    "sql",
    [
        # the tables are joined by another column: whose branch_id was meant is the model's call
        "SELECT branch_id FROM members m JOIN loans l ON l.member_id = m.id JOIN copies c ON c.id = l.copy_id",
        # an outer join: copies without a member's branch have a branch_id of their own
        "SELECT branch_id FROM copies c LEFT JOIN members m ON m.branch_id = c.branch_id",
        # tied by a condition that is not an equality
        "SELECT branch_id FROM members m JOIN copies c ON c.branch_id <> m.branch_id",
        # tied only under an OR
        "SELECT branch_id FROM members m JOIN copies c ON c.branch_id = m.branch_id OR c.id = m.id",
    ],
)
def test_a_column_of_several_tables_not_tied_by_inner_join_equalities_is_left_to_the_model(lending, sql):
    assert lending.add_missing_join(sql, ambiguous("branch_id")) is None


@pytest.fixture
def prefixed(db) -> StatementRepairs:
    """Tables whose columns carry their table's prefix (``l_`` in lineitem, ``o_`` in orders), as an
    order-processing schema names them; parts and partsupp share the name ``p_size``/``ps_size``."""
    statements = (
        "CREATE TABLE orders (o_id INT PRIMARY KEY, o_date DATE, o_total DECIMAL(10,2))",
        "CREATE TABLE lineitem (l_order_id INT, l_line INT, l_extended_price DECIMAL(10,2), l_discount DECIMAL(4,2), "
        "PRIMARY KEY (l_order_id, l_line), FOREIGN KEY (l_order_id) REFERENCES orders(o_id))",
        "CREATE TABLE part (p_id INT PRIMARY KEY, p_name VARCHAR(40), p_size INT)",
        "CREATE TABLE partsupp (ps_part_id INT, ps_supplier INT, ps_size INT, PRIMARY KEY (ps_part_id, ps_supplier))",
        "CREATE TABLE notes (id INT PRIMARY KEY, extended_note TEXT, price_note TEXT)",
        "INSERT INTO orders VALUES (1, '2025-01-02', 10)",
        "INSERT INTO lineitem VALUES (1, 1, 9.5, 0.1)",
    )
    return StatementRepairs(described(db, statements, ["orders", "lineitem", "part", "partsupp", "notes"]))


@pytest.mark.parametrize(
    "sql, column, repaired",
    [
        (
            "SELECT SUM(l.extended_price) FROM lineitem l JOIN orders o ON o.o_id = l.l_order_id",
            "l.extended_price",
            "SELECT SUM(l.l_extended_price) FROM lineitem AS l JOIN orders AS o ON o.o_id = l.l_order_id",
        ),
        (  # unqualified, two tables in the query: one has it with its prefix
            "SELECT SUM(extended_price * (1 - l_discount)) FROM lineitem JOIN orders ON o_id = l_order_id",
            "extended_price",
            "SELECT SUM(l_extended_price * (1 - l_discount)) FROM lineitem JOIN orders ON o_id = l_order_id",
        ),
    ],
)
def test_a_column_named_without_its_tables_prefix_gets_the_prefix(prefixed, db, sql, column, repaired):
    assert prefixed.add_missing_join(sql, f"(1054, \"Unknown column '{column}' in 'field list'\")") == repaired
    db.fetchall(repaired)  # it runs
    assert "l_extended_price" in prefixed.hint_for(f"Unknown column '{column}'", ["lineitem", "orders"], sql)


@pytest.mark.parametrize(
    "sql",
    [
        # two tables of the query have it with their prefix (p_size, ps_size): which was meant is the model's
        "SELECT size FROM part JOIN partsupp ON ps_part_id = p_id|size",
        # a table without a shared prefix (notes: id, extended_note, price_note)
        "SELECT n.note FROM notes n|n.note",
        # no column of any table is the name with a prefix
        "SELECT l.shipping_mode FROM lineitem l|l.shipping_mode",
    ],
)
def test_no_prefix_is_guessed_where_the_schema_does_not_decide_it(prefixed, sql):
    statement, column = sql.split("|")
    assert prefixed.add_missing_join(statement, f"(1054, \"Unknown column '{column}' in 'field list'\")") is None


@pytest.fixture
def trade(db) -> StatementRepairs:
    """A line belongs to an order (whose customer has a nation) and was supplied by a supplier (who has
    a nation too): a line's nation is one of two different rows."""
    statements = (
        "CREATE TABLE nation (id INT PRIMARY KEY, name VARCHAR(40))",
        "CREATE TABLE customer (id INT PRIMARY KEY, nation_id INT, FOREIGN KEY (nation_id) REFERENCES nation(id))",
        "CREATE TABLE supplier (id INT PRIMARY KEY, nation_id INT, FOREIGN KEY (nation_id) REFERENCES nation(id))",
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, FOREIGN KEY (customer_id) REFERENCES customer(id))",
        "CREATE TABLE line (id INT PRIMARY KEY, order_id INT, supplier_id INT, price DECIMAL(8,2), "
        "FOREIGN KEY (order_id) REFERENCES orders(id), FOREIGN KEY (supplier_id) REFERENCES supplier(id))",
    )
    return StatementRepairs(described(db, statements, ["nation", "customer", "supplier", "orders", "line"]))


def test_a_column_reached_along_several_chains_is_not_repaired_and_the_hint_lists_the_chains(trade):
    """``l.name`` is the nation's: the supplier's or the customer's, which only the question says. kb
    writes no join; the hint gives both chains."""
    sql = "SELECT l.name, SUM(l.price) FROM line l GROUP BY l.name"
    error = unknown("l.name")
    assert trade.add_missing_join(sql, error) is None
    hint = trade.hint_for(error, ["line"], sql)
    assert "From line, nation is reached in 2 ways, each a different nation row" in hint
    assert "JOIN supplier ON supplier.id = line.supplier_id JOIN nation ON nation.id = supplier.nation_id" in hint
    assert (
        "JOIN orders ON orders.id = line.order_id JOIN customer ON customer.id = orders.customer_id "
        "JOIN nation ON nation.id = customer.nation_id" in hint
    )


def test_a_column_reached_along_one_chain_of_the_rows_own_keys_is_still_repaired(trade, db):
    """From orders, the nation is only the customer's: one chain, so kb joins it."""
    sql = "SELECT o.id FROM orders o WHERE o.name = 'Japan'"
    repaired = trade.add_missing_join(sql, unknown("o.name"))
    assert repaired is not None and "JOIN customer ON customer.id = o.customer_id" in repaired
    assert "JOIN nation ON nation.id = customer.nation_id" in repaired
    db.fetchall(repaired)


def test_a_column_no_table_has_gets_the_closest_names_of_the_statements_tables_as_a_hint(trade):
    """``l.unit_price`` exists nowhere; the line's ``price`` is the closest name of the statement's
    tables: the hint names it (no repair: which column was meant is the model's to say)."""
    error = unknown("l.unit_price")
    sql = "SELECT SUM(l.unit_price) FROM line l"
    assert trade.add_missing_join(sql, error) is None
    hint = trade.hint_for(error, ["line"], sql)
    assert hint.endswith("The closest names in the statement's tables: line.price.")
    assert "closest" not in trade.hint_for(unknown("l.colour"), ["line"], "SELECT l.colour FROM line l")
