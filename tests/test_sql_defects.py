"""Defects of statements that run (kb.engines.sql_defects): where each fires, and where it must not."""

from __future__ import annotations

import pytest

from kb.engines.sql_defects import defects


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
    assert len(found) == 1 and "compares a column with itself" in found[0]


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
