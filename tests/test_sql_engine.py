"""The SQL engine's logic around the model (scripted): the schema it shows, corrections, empty results."""

from __future__ import annotations

import pytest
from conftest import BUSINESS_TABLES
from helpers import sql_answer
from scripted_llm import ScriptedLLM

from kb import KnowledgeBase
from kb.cli.output import print_answer_tail
from kb.engines.answer_rows import gives_row_count
from kb.engines.sql.answering import EMPTY_HINT
from kb.engines.sql.engine import SQLEngine
from kb.engines.sql.repairs import StatementRepairs
from kb.engines.sql.schema import SchemaDescriber
from kb.engines.sql.vote import holds_in_fewer_columns
from kb.errors import ConfigError
from kb.stores.connection import MariaDBConnection

LATE = "How many returns were requested more than 30 days after delivery?"
WRONG = "SELECT COUNT(*) FROM returns WHERE requested_at > DATE_ADD(delivered_at, INTERVAL 30 DAY)"
RIGHT = (
    "SELECT COUNT(*) AS late FROM returns r JOIN orders o ON o.id = r.order_id "
    "WHERE DATEDIFF(r.requested_at, o.delivered_at) > 30"
)


# A greedy statement that counts every order, and two others that count the cancelled ones (other text)
EVERY_ORDER = "SELECT COUNT(*) FROM orders"
CANCELLED_ORDERS = [
    "SELECT COUNT(*) AS n FROM orders WHERE status = 'cancelled'",
    "SELECT COUNT(id) FROM orders WHERE status = 'cancelled'",
]


def votes(
    written: int,
    ran: int,
    agreeing: int,
    *,
    greedy_chosen: bool = False,
    rescue: bool = False,
    rewrite_answered: bool = False,
) -> dict[str, object]:
    """The ``candidates`` an answer reports: ``written`` statements of which ``ran`` ran clean and
    ``agreeing`` gave the chosen rows."""
    return {
        "written": written,
        "ran": ran,
        "agreeing": agreeing,
        "greedy_chosen": greedy_chosen,
        "rescue": rescue,
        "rewrite_answered": rewrite_answered,
    }


@pytest.fixture
def engine_with(business):
    def make(script, **kwargs) -> tuple[SQLEngine, ScriptedLLM]:
        """An engine on the demo's tables: one statement per question unless ``candidates`` is given,
        and then candidates for every question unless ``candidates_when`` is given."""
        llm = ScriptedLLM(script)
        kwargs.setdefault("candidates", 1)
        kwargs.setdefault("candidates_when", "always")
        return SQLEngine(
            llm, MariaDBConnection(business), database="kb_business", tables=BUSINESS_TABLES, **kwargs
        ), llm

    return make


@pytest.fixture
def late_returns(admin, project_settings) -> int:
    db = project_settings.sql.database
    return admin.fetchall(
        f"SELECT COUNT(*) FROM `{db}`.returns r JOIN `{db}`.orders o ON o.id = r.order_id "
        "WHERE DATEDIFF(r.requested_at, o.delivered_at) > 30"
    )[0][0]


def test_the_prompt_shows_what_the_model_cannot_guess(engine_with):
    engine, llm = engine_with(["SELECT COUNT(*) AS n FROM orders", "There are 1800 orders."])
    sql_answer(engine, "How many orders are there?")
    prompt = llm.prompts[0]
    assert "CREATE TABLE orders (  -- customer orders" in prompt
    assert "customer_id INT NOT NULL REFERENCES customers(id)" in prompt  # the join path; never NULL
    assert "status ENUM('placed','shipped','delivered','cancelled')" in prompt
    assert "values: 'FI'" in prompt and "ISO country code" in prompt  # comments and sampled values
    assert "DATEDIFF(later, earlier)" in prompt and "DAYOFWEEK" in prompt  # MariaDB date functions
    assert prompt.rstrip().endswith("Question: How many orders are there?\nSQL:")  # the question last: cacheable


def test_a_column_of_a_table_not_joined_gets_the_join_without_asking_the_model_again(engine_with, late_returns):
    engine, llm = engine_with([WRONG, f"{late_returns} returns came more than 30 days after delivery."])
    answer = sql_answer(engine, LATE)
    assert [a.error is None for a in answer.attempts] == [False, True]
    assert "Unknown column 'delivered_at'" in answer.attempts[0].error
    assert answer.attempts[0].sql.startswith("SELECT COUNT(*) FROM returns WHERE")
    assert answer.sql == (
        "SELECT COUNT(*) FROM returns JOIN orders ON orders.id = returns.order_id "
        "WHERE returns.requested_at > DATE_ADD(orders.delivered_at, INTERVAL '30' DAY)"
    )
    assert answer.rows == [{"COUNT(*)": late_returns}] and not answer.refused
    assert len(llm.prompts) == 2  # the first statement and the answer: the join was kb's, along the keys


@pytest.mark.parametrize(
    "wrong, repaired",
    [
        (  # a subquery filter: the outer query joins orders; the subquery's own id stays the customers' id
            "SELECT COUNT(*) FROM returns WHERE customer_id IN (SELECT id FROM customers WHERE country = 'FI')",
            "SELECT COUNT(*) FROM returns JOIN orders ON orders.id = returns.order_id "
            "WHERE orders.customer_id IN (SELECT id FROM customers WHERE country = 'FI')",
        ),
        (  # an ON clause joining two tables as neighbours: orders, between them, comes before the join
            "SELECT COUNT(*) FROM returns T1 JOIN customers T2 ON T1.customer_id = T2.id WHERE T2.country = 'FI'",
            "SELECT COUNT(*) FROM returns AS T1 JOIN orders ON orders.id = T1.order_id "
            "JOIN customers AS T2 ON T2.id = orders.customer_id WHERE T2.country = 'FI'",
        ),
    ],
    ids=["subquery", "on-clause"],
)
def test_a_column_of_a_table_two_keys_away_gets_the_join(engine_with, admin, project_settings, wrong, repaired):
    db = project_settings.sql.database
    gold = admin.fetchall(
        f"SELECT COUNT(*) FROM `{db}`.returns r JOIN `{db}`.orders o ON o.id = r.order_id "
        f"JOIN `{db}`.customers c ON c.id = o.customer_id WHERE c.country = 'FI'"
    )[0][0]
    engine, llm = engine_with([wrong, "Answer."])
    answer = sql_answer(engine, "How many returns came from customers in Finland?")
    assert [a.error is None for a in answer.attempts] == [False, True]
    assert "Unknown column" in answer.attempts[0].error and answer.sql == repaired
    assert answer.rows == [{"COUNT(*)": gold}] and gold > 0 and len(llm.prompts) == 2


def test_two_tables_joined_as_neighbours_get_the_table_between_without_asking_the_model(
    engine_with, admin, project_settings
):
    db = project_settings.sql.database
    gold = admin.fetchall(
        f"SELECT COUNT(*) FROM `{db}`.returns r JOIN `{db}`.orders o ON o.id = r.order_id "
        f"JOIN `{db}`.customers c ON c.id = o.customer_id WHERE c.country = 'FI'"
    )[0][0]
    written = "SELECT COUNT(*) FROM customers c JOIN returns r ON c.id = r.customer_id WHERE c.country = 'FI'"
    engine, llm = engine_with([written, "Answer."])
    answer = sql_answer(engine, "How many returns came from customers in Finland?")
    assert "Unknown column 'r.customer_id'" in answer.attempts[0].error
    assert answer.sql == (
        "SELECT COUNT(*) FROM customers AS c JOIN orders ON orders.customer_id = c.id "
        "JOIN returns AS r ON r.order_id = orders.id WHERE c.country = 'FI'"
    )
    assert answer.rows == [{"COUNT(*)": gold}] and gold > 0 and len(llm.prompts) == 2


def test_value_linking_names_the_column_that_holds_a_value_and_changes_nothing_itself(engine_with):
    # a name the schema does not list (214 customer names): the prompt says where it lives
    written = "SELECT COUNT(*) FROM orders WHERE customer_id = 'Ida Andersson'"  # the model's mistake stands
    engine, llm = engine_with([written, "None."])
    answer = sql_answer(engine, "How many orders has ida andersson placed?")
    assert "Values named in the question: 'Ida Andersson' is a value of customers.name." in llm.prompts[0]
    # right above the question, which stays last: the prefix before "Question:" stays cacheable
    assert llm.prompts[0].rstrip().endswith("customers.name.\nHow many orders has ida andersson placed?\nSQL:")
    assert answer.sql == written and len(answer.attempts) == 1
    # values the schema lists already (ENUM states, short lists) are not repeated: "placed" is a verb here
    engine, llm = engine_with(["SELECT COUNT(*) FROM orders", "1800."])
    sql_answer(engine, "How many orders were placed on a Saturday by business customers?")
    assert "Values named" not in llm.prompts[0]


def test_a_code_in_capitals_is_named_by_its_own_letters_only(db, db_url):
    """'WA' is one of 30 shipment states (too many to list: the value index holds them) and one of 3
    office states (the schema lists them): "was" names neither (it is not a plural of "wa"); "WA" and
    "wa" name both."""
    db.execute("CREATE TABLE office (id INT PRIMARY KEY, city VARCHAR(30), state CHAR(2))")
    db.execute("INSERT INTO office VALUES (1, 'Seattle', 'WA'), (2, 'Austin', 'TX'), (3, 'Boston', 'MA')")
    db.execute("CREATE TABLE shipment (id INT PRIMARY KEY, state CHAR(2))")
    states = ["WA", *(f"Q{chr(ord('A') + i)}" for i in range(26)), "XA", "XB", "XC"]
    for number, state in enumerate(states):
        db.execute("INSERT INTO shipment VALUES (?, ?)", (number, state))
    engine = SQLEngine(ScriptedLLM([]), db, database=db_url.database, tables=["office", "shipment"])
    assert engine.values is not None
    assert engine.values.hint("Which shipment was the last one?") == ""
    assert engine.rows_asked("Which city was the office in?").fields == ()
    assert engine.values.hint("How many shipments went to WA?") == (
        "Values named in the question: 'WA' is a value of shipment.state."
    )
    assert "office.city of 'WA'" in engine.rows_asked("Which city is the WA office in?").fields
    assert "office.city of 'WA'" in engine.rows_asked("Which city is the wa office in?").fields


@pytest.mark.parametrize(
    "question, asked",
    [
        ("What is the price of the Barista Pro?", ["products.price of 'Barista Pro'"]),  # a name the schema lists
        ("What is ida andersson's email address?", ["customers.email of 'Ida Andersson'"]),  # one it does not list
        ("Which city does Ida Andersson live in?", ["customers.city of 'Ida Andersson'"]),
        ("What was the total of order 17?", ["orders.total of order 17"]),  # a row by its table's name and number
        ("What is the subject of support ticket #5?", ["support_tickets.subject of support ticket 5"]),
        ("What was refunded for return no. 3, and what amount?", ["returns.refund_amount of return 3"]),
        # must not fire: a row named and none of its columns; a column's word and no row; an ENUM member
        # (a state, not a row) beside its own column; a row named by the column the question asks
        ("How do I descale the Barista Pro?", []),
        ("What does the price match guarantee cover?", []),
        ("When is a support ticket of priority urgent escalated?", []),
        ("Is Barista Pro the name of the flagship machine?", []),
        ("What is the price of an espresso machine?", ["products.price of 'espresso machine'"]),
    ],
)
def test_the_fields_a_question_asks_of_a_row_it_names(engine_with, question, asked):
    engine, llm = engine_with([])
    assert list(engine.rows_asked(question).fields) == asked
    assert llm.prompts == []  # read from the schema and the data, not asked of the model


@pytest.mark.parametrize(
    "question, named",
    [
        (
            "How many Grinder Duo orders were cancelled?",
            ["orders of 'Grinder Duo'", "orders of 'grinder'"],
        ),  # and its category
        ("How often was the Kettle Pour ordered last year?", ["orders of 'Kettle Pour'"]),  # a verb begun by it
        ("How many Barista Mini machines were returned?", ["returns of 'Barista Mini'"]),
        ("How many support tickets has Ida Andersson opened?", ["support_tickets of 'Ida Andersson'"]),
        # must not fire: a row named and no other table; another table and no row; the row's own table;
        # and, as written (every word of a table's name), "tickets" alone does not name support_tickets
        ("How many grind settings does the Grinder Duo have?", []),
        ("How many orders were returned?", []),
        ("How many products cost more than the Barista Pro?", []),
        ("How many tickets mention the Barista Pro?", []),
    ],
)
def test_the_records_of_another_table_a_question_names_beside_a_row(engine_with, question, named):
    engine, llm = engine_with([])
    assert list(engine.rows_asked(question).records) == named
    assert llm.prompts == []


@pytest.mark.parametrize(
    "question, written",
    [
        # the three statements the removed word-pattern repairs used to turn into other meanings
        (
            "How many tickets opened in 2025 are open?",
            "SELECT COUNT(*) FROM support_tickets WHERE YEAR(opened_at) = 2025 AND status = 'open'",
        ),
        (
            "What is the customer_id of order 17?",  # `\bid\b` did not match customer_id: it became customers.name
            "SELECT customer_id FROM orders WHERE id = 17",
        ),
        (
            "How many orders were placed in each year?",
            "SELECT YEAR(ordered_at), COUNT(*) FROM orders WHERE status = 'placed' GROUP BY YEAR(ordered_at)",
        ),
    ],
)
def test_a_statement_that_runs_is_answered_as_the_model_wrote_it(
    engine_with, admin, project_settings, question, written
):
    gold = admin.fetchall(written.replace("FROM ", f"FROM `{project_settings.sql.database}`.", 1))
    engine, llm = engine_with([written, "Answer."])
    answer = sql_answer(engine, question)
    assert answer.sql == written and len(answer.attempts) == 1 and answer.attempts[0].error is None
    assert [tuple(r.values()) for r in answer.rows] == [tuple(g) for g in gold]


def test_a_duration_compared_in_the_columns_unit_is_left_as_written(db):
    db.execute("CREATE TABLE tracks (id INT PRIMARY KEY, name VARCHAR(80), milliseconds INT NOT NULL)")
    db.execute("INSERT INTO tracks VALUES (1, 'Short', 200000), (2, 'Long', 400000), (3, 'Longer', 600000)")
    database = db.fetchall("SELECT DATABASE()")[0][0]
    written = "SELECT COUNT(*) AS n FROM tracks WHERE milliseconds >= 180000 AND milliseconds <= 300000"
    engine = SQLEngine(ScriptedLLM([written, "Answer."]), db, database=database, tables=["tracks"], candidates=1)
    answer = sql_answer(engine, "How many tracks are between 3 and 5 minutes long?")
    assert answer.sql == written and answer.rows == [{"n": 1}]


def test_candidates_that_disagree_are_voted_on_by_their_rows(engine_with, admin, project_settings):
    db = project_settings.sql.database
    cancelled = admin.fetchall(f"SELECT COUNT(*) FROM `{db}`.orders WHERE status = 'cancelled'")[0][0]
    greedy = "SELECT COUNT(*) FROM orders"  # every order: the other two candidates agree on something else
    others = [
        "SELECT COUNT(*) AS n FROM orders WHERE status = 'cancelled'",
        "SELECT COUNT(id) FROM orders WHERE status IN ('cancelled')",  # other text, same rows
    ]
    engine, llm = engine_with([greedy, *others, "Answer."], candidates=3, candidate_source="samples")
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.rows == [{"n": cancelled}] and answer.sql == others[0]
    assert answer.candidates == votes(written=3, ran=3, agreeing=2)
    assert answer.attempts[0].sql == greedy and answer.attempts[0].error.startswith("outvoted: 2 of 3")
    # the sampled candidates were asked with the same prompt (a prompt cache serves them)
    assert llm.prompts[0] == llm.prompts[1] == llm.prompts[2]


def test_candidates_from_other_prompts_outvote_the_greedy_statement_and_are_written_only_when_needed(
    engine_with, admin, project_settings
):
    db = project_settings.sql.database
    cancelled = admin.fetchall(f"SELECT COUNT(*) FROM `{db}`.orders WHERE status = 'cancelled'")[0][0]
    greedy, others = EVERY_ORDER, CANCELLED_ORDERS
    engine, llm = engine_with([greedy, *others, "Answer."], candidates=3, candidate_source="prompts")
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.rows == [{"n": cancelled}] and answer.sql == others[0]
    assert answer.candidates is not None and (answer.candidates["agreeing"], answer.candidates["ran"]) == (2, 3)
    assert answer.attempts[0].sql == greedy and answer.attempts[0].error.startswith("outvoted: 2 of 3")
    # kb's prompt, then kb's rules over LlamaIndex's description of the tables, then LlamaIndex's prompt over kb's
    kb_prompt, own_description, kb_description = llm.prompts[:3]
    assert "CREATE TABLE orders" in kb_prompt and "Rules:" in kb_prompt
    assert "Table 'orders' has columns:" in own_description and "Rules:" in own_description
    assert "CREATE TABLE orders" in kb_description and "Rules:" not in kb_description
    assert kb_description.rstrip().endswith("How many orders were cancelled?\nSQLQuery:")
    # the second prompt agreeing with the greedy statement: the third is not written
    engine, llm = engine_with([others[0], others[1], "Answer."], candidates=3, candidate_source="prompts")
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.sql == others[0] and answer.candidates["written"] == 2 and len(llm.prompts) == 3


def test_every_statement_writer_stops_the_model_where_an_invented_result_would_begin(engine_with):
    """LlamaIndex's prompt asks for "SQLQuery: ... SQLResult: ... Answer: ..."; a model that goes on
    past the statement is stopped there, by every writer, and its statement is kept."""
    greedy, others = EVERY_ORDER, CANCELLED_ORDERS
    invented = f"{others[1]}\nSQLResult: [(70,)]\nAnswer: There were 70 cancelled orders."
    engine, llm = engine_with([greedy, others[0], invented, "Answer."], candidates=3, candidate_source="prompts")
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.sql == others[0] and answer.candidates["agreeing"] == 2  # the third statement kept and voted
    writers, answer_writer = llm.stops[:3], llm.stops[3]
    assert all("SQLResult:" in stops for stops in writers) and "SQLResult:" not in answer_writer


def test_candidates_selecting_more_columns_vote_for_the_answer_that_selects_only_what_was_asked(engine_with):
    greedy = "SELECT name FROM products ORDER BY price DESC LIMIT 1"
    wider = "SELECT name, price FROM products ORDER BY price DESC LIMIT 1"  # the same answer, and its price
    engine, _ = engine_with([greedy, wider, "Answer."], candidates=3, candidate_source="prompts")
    answer = sql_answer(engine, "Which product is the most expensive?")
    assert answer.sql == greedy and (answer.candidates["agreeing"], answer.candidates["written"]) == (2, 2)
    # a wider statement whose rows differ in the asked column is no vote for it
    other = "SELECT name, price FROM products ORDER BY price ASC LIMIT 1"
    engine, _ = engine_with([greedy, other, other, "Answer."], candidates=3, candidate_source="prompts")
    answer = sql_answer(engine, "Which product is the most expensive?")
    assert answer.sql == other and answer.candidates["agreeing"] == 2


def test_with_candidates_on_doubt_only_a_clean_greedy_statement_with_rows_answers_alone(engine_with):
    greedy, others = EVERY_ORDER, CANCELLED_ORDERS
    engine, llm = engine_with([greedy, *others, "Answer."], candidates=3, candidates_when="doubt")
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.sql == greedy and answer.candidates is None
    assert len(llm.prompts) == 2  # the statement and the answer: no candidate was written
    # the same script with candidates always: the two others outvote it
    engine, llm = engine_with([greedy, *others, "Answer."], candidates=3, candidates_when="always")
    assert sql_answer(engine, "How many orders were cancelled?").sql == others[0]


def test_with_candidates_on_doubt_a_greedy_statement_without_rows_or_that_failed_is_voted_on(engine_with):
    none_found = (
        "SELECT DISTINCT customers.name FROM customers JOIN orders ON orders.customer_id = customers.id "
        "WHERE orders.total < 0"
    )
    engine, llm = engine_with([none_found, none_found, "Answer."], candidates=3, candidates_when="doubt")
    answer = sql_answer(engine, "Which customers placed an order with a negative total?")
    assert answer.rows == [] and answer.candidates is not None and answer.candidates["written"] == 2
    failed = "SELECT COUNT(*) FROM orders WHERE placed = 2025"  # no such column: the model corrects it
    corrected = "SELECT COUNT(*) AS n FROM orders"
    engine, llm = engine_with([failed, corrected, corrected, "Answer."], candidates=3, candidates_when="doubt")
    answer = sql_answer(engine, "How many orders are there?")
    assert answer.sql == corrected and answer.candidates is not None and answer.candidates["written"] == 2


def test_candidates_when_is_a_setting_of_the_knowledge_base(local_embed, business):
    greedy, other = "SELECT COUNT(*) AS n FROM orders", "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"
    llm = ScriptedLLM([greedy, other, other, "Answer."])
    config = {"database": {"name": "kb_test_candidates"}, "sql": {"candidates": 3, "candidates_when": "doubt"}}
    kb = KnowledgeBase.from_config(config, embed_model=local_embed, llm=llm)
    try:
        response = kb.sql_engine.query("How many orders are there?")
        assert kb.warm_sql_prompts() == 0  # a scripted LLM keeps no prompt cache: nothing to warm
    finally:
        kb.close()
    assert response.metadata["sql_query"] == greedy and response.metadata["candidates"] is None


def test_candidates_from_other_prompts_are_a_setting_of_the_knowledge_base(local_embed, business):
    greedy, voted = "SELECT COUNT(*) FROM orders", "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"
    llm = ScriptedLLM([greedy, voted, voted, "Answer."])
    config = {
        "database": {"name": "kb_test_candidates"},
        "sql": {"candidates": 3, "candidate_source": "prompts", "candidates_when": "always"},
    }
    kb = KnowledgeBase.from_config(config, embed_model=local_embed, llm=llm)
    try:
        response = kb.sql_engine.query("How many orders were cancelled?")
    finally:
        kb.close()
    assert response.metadata["sql_query"] == voted
    assert response.metadata["candidates"]["agreeing"] == 2
    assert "Table 'orders' has columns:" in llm.prompts[1] and llm.prompts[2].rstrip().endswith("SQLQuery:")


def test_holds_in_fewer_columns():
    narrow = [{"FirstName": "Helena", "LastName": "Holy"}]
    assert holds_in_fewer_columns([{"a": "Helena", "b": "Holy", "total": 49.62}], narrow)
    assert not holds_in_fewer_columns([{"a": "Helena", "b": "Hole", "total": 49.62}], narrow)
    assert not holds_in_fewer_columns(narrow, narrow)  # not wider: the same rows are another test
    assert not holds_in_fewer_columns([{"a": "Helena", "b": "Holy", "t": 1}] * 2, narrow)  # more rows
    assert not holds_in_fewer_columns([], [])
    two = [{"n": 1, "c": "FI"}, {"n": 2, "c": "SE"}]
    assert holds_in_fewer_columns(two, [{"c": "SE"}, {"c": "FI"}])  # rows in any order
    assert not holds_in_fewer_columns(two, [{"c": "FI"}, {"c": "FI"}])


def test_a_candidate_the_guard_refuses_is_never_counted_and_agreement_stops_early(engine_with, business_checksum):
    before = business_checksum()
    greedy = "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"
    same = "SELECT COUNT(id) FROM orders WHERE status = 'cancelled'"
    script = [greedy, "DELETE FROM orders", "SELECT COUNT(*) FROM orders", same, "Answer."]
    engine, llm = engine_with(script, candidates=4)
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.sql == greedy and answer.candidates == votes(written=4, ran=3, agreeing=2, greedy_chosen=True)
    assert business_checksum() == before  # the refused one never ran
    # a tie (one each, the third refused): the greedy statement's rows win
    script = [greedy, "SELECT COUNT(*) FROM orders", "DELETE FROM orders", "Answer."]
    engine, llm = engine_with(script, candidates=3)
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.sql == greedy and answer.candidates == votes(written=3, ran=2, agreeing=1, greedy_chosen=True)
    # two agreeing first: the third of three candidates is not written at all
    engine, llm = engine_with([greedy, same, "Answer."], candidates=3)
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.candidates == votes(written=2, ran=2, agreeing=2, greedy_chosen=True)
    assert len(llm.prompts) == 3  # two statements and the answer


def test_a_candidate_that_could_not_change_the_vote_is_not_written(engine_with, business_checksum):
    """Of three candidates, the second one failing leaves the greedy statement's rows ahead: a third
    could only tie with them, and a tie goes to the greedy statement, so it is not written."""
    before = business_checksum()
    greedy = "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"
    engine, llm = engine_with([greedy, "DELETE FROM orders", EVERY_ORDER, "Answer."], candidates=3)
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.sql == greedy and answer.candidates == votes(written=2, ran=1, agreeing=1, greedy_chosen=True)
    assert len(llm.prompts) == 3  # two statements and the answer
    assert business_checksum() == before
    # nor is a second of two: alone it could only tie with the greedy statement
    engine, llm = engine_with([greedy, EVERY_ORDER, "Answer."], candidates=2)
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.sql == greedy and answer.candidates["written"] == 1 and len(llm.prompts) == 2
    # with a vote still open (four candidates: two more could outvote the greedy one), they are written
    engine, llm = engine_with([greedy, "DELETE FROM orders", EVERY_ORDER, EVERY_ORDER, "Answer."], candidates=4)
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.sql == EVERY_ORDER and (answer.candidates["written"], answer.candidates["agreeing"]) == (4, 2)


def test_with_no_greedy_statement_that_ran_the_third_candidate_is_written_only_when_the_second_failed_too(
    engine_with, late_returns
):
    """Nothing the greedy prompt or its corrections wrote ran (and no rescue): when the second
    candidate runs, a third could at most tie with it, and a tie goes to the group formed first."""
    unknown = "SELECT c.nickname FROM customers c"  # the server rejects it
    as_run = RIGHT.replace(" r ", " AS r ").replace(" o ", " AS o ")  # the guard spells the aliases out
    script = sampled_after_corrections([RIGHT, EVERY_ORDER], written=WRONG_JOIN)
    engine, llm = engine_with(script, candidates=3, rescue_samples=0)
    answer = sql_answer(engine, LATE)
    assert answer.rows == [{"late": late_returns}] and answer.sql == as_run
    assert answer.candidates == votes(written=2, ran=1, agreeing=1)
    # the second failed as well: the third could still answer, so it is written
    script = sampled_after_corrections([unknown, RIGHT], written=WRONG_JOIN)
    engine, llm = engine_with(script, candidates=3, rescue_samples=0)
    answer = sql_answer(engine, LATE)
    assert answer.rows == [{"late": late_returns}] and answer.candidates == votes(written=3, ran=1, agreeing=1)


# Two tables and an unqualified column neither has: which table it was meant from is the model's call
WRONG_JOIN = (
    "SELECT COUNT(*) FROM returns r JOIN products p ON p.id = r.product_id "
    "WHERE DATEDIFF(r.requested_at, delivered_at) > 30"
)


def test_a_failed_first_attempt_is_corrected_with_the_error_and_a_join_hint(engine_with, late_returns):
    def script(prompt: str) -> str:
        if "Write a corrected statement" in prompt:
            assert "Unknown column 'delivered_at'" in prompt and "JOIN products AS p ON p.id = r.product_id" in prompt
            assert "delivered_at is a column of orders." in prompt
            assert "JOIN orders ON orders.id = returns.order_id" in prompt
            return RIGHT
        if prompt.rstrip().endswith("SQL:"):
            return WRONG_JOIN
        return f"{late_returns} returns came more than 30 days after delivery."

    engine, llm = engine_with(script)
    answer = sql_answer(engine, LATE)
    assert [a.error is None for a in answer.attempts] == [False, True]
    assert "Unknown column 'delivered_at'" in answer.attempts[0].error
    assert answer.sql == answer.attempts[1].sql and "JOIN orders" in answer.sql
    assert answer.rows == [{"late": late_returns}] and not answer.refused
    assert answer.text.startswith(str(late_returns))


def test_a_column_qualified_with_the_wrong_table_is_repaired_without_the_model(engine_with, late_returns):
    # taken from a joined table that lacks it: the join to the table that has it is added
    engine, llm = engine_with([WRONG_JOIN.replace(", delivered_at)", ", r.delivered_at)"), "Answer."])
    answer = sql_answer(engine, LATE)
    assert answer.sql == (
        "SELECT COUNT(*) FROM returns AS r JOIN products AS p ON p.id = r.product_id "
        "JOIN orders ON orders.id = r.order_id WHERE DATEDIFF(r.requested_at, orders.delivered_at) > 30"
    )
    assert answer.rows == [{"COUNT(*)": late_returns}] and len(llm.prompts) == 2
    # qualified with the wrong one of the query's own tables: the qualifier is corrected
    wrong = "SELECT r.name, COUNT(*) AS n FROM returns r JOIN products p ON p.id = r.product_id GROUP BY r.name"
    engine, llm = engine_with([wrong + " ORDER BY n DESC LIMIT 1", "Answer."])
    answer = sql_answer(engine, "Which product was returned most often?")
    assert answer.sql.startswith("SELECT p.name, COUNT(*) AS n FROM returns AS r JOIN products AS p")
    assert "GROUP BY p.name" in answer.sql and answer.rows and "name" in answer.rows[0]


def test_corrections_stop_after_three_attempts(engine_with):
    def different_each_time(prompt, wrong=iter(range(100))):
        return WRONG_JOIN.replace("> 30", f"> {30 + next(wrong)}")

    engine, llm = engine_with(different_each_time)
    answer = sql_answer(engine, LATE)
    assert len(answer.attempts) == 3 and all("Unknown column" in a.error for a in answer.attempts)
    assert answer.rows == [] and "failed on the server after 3 attempts" in answer.text
    # then the rescue samples, none of which ran either; no rows, no answer
    assert len(llm.prompts) == 3 + engine.rescue_samples and not any("Result (" in prompt for prompt in llm.prompts)
    assert answer.candidates == votes(written=4, ran=0, agreeing=0, rescue=True)


def test_a_correction_that_repeats_a_tried_statement_is_not_run_again(engine_with):
    engine, llm = engine_with(lambda prompt: WRONG_JOIN, rescue_samples=0)
    answer = sql_answer(engine, LATE)
    # the correction repeated the failed statement, and so did the sampled second try: nothing new to run
    assert len(answer.attempts) == 1 and "Unknown column" in answer.attempts[0].error
    assert len(llm.prompts) == 3 and "The query failed on the server: " in answer.text


def test_examples_are_shown_after_the_schema_and_checked_by_the_guard(engine_with):
    from kb.business_database.examples import SQLExample

    def pair(question: str, sql: str) -> SQLExample:
        return SQLExample(
            id=question[:8],
            database="kb_business",
            question=question,
            sql=sql,
            source="cli",
            added_by=None,
            added_at="",
        )

    may = pair(
        "How many returns were requested in May 2026?", "SELECT COUNT(*) FROM returns WHERE MONTH(requested_at) = 5"
    )
    wipe = pair("Wipe", "DELETE FROM orders")
    engine, llm = engine_with(
        ["SELECT COUNT(*) AS n FROM orders", "1800."], examples=lambda question: [wipe, may], examples_when="always"
    )
    answer = sql_answer(engine, "How many orders are there?")
    prompt = llm.prompts[0]
    assert "Examples of good SQL for these tables:\nQuestion: How many returns were requested in May 2026?" in prompt
    assert prompt.index("CREATE TABLE") < prompt.index("Examples of good SQL") < prompt.index("How many orders")
    assert "Wipe" not in prompt and [e["question"] for e in answer.sql_examples] == [may.question]
    # an example over a table outside the allow-list is left out
    narrowed = SQLEngine(
        ScriptedLLM(["SELECT COUNT(*) FROM orders", "1800."]),
        engine.readonly,
        database="kb_business",
        tables=["orders"],
        examples=lambda question: [may],
        examples_when="always",
    )
    assert sql_answer(narrowed, "How many orders are there?").sql_examples == []


def test_a_refused_write_is_not_retried(engine_with, business_checksum):
    before = business_checksum()
    engine, llm = engine_with(lambda prompt: "DELETE FROM orders")
    answer = sql_answer(engine, "Delete the orders")
    assert len(answer.attempts) == 1 and answer.refused and "only SELECT" in answer.refusal_reason
    assert len(llm.prompts) == 1 and answer.candidates is None  # no rewrite and no rescue sample: it asked to write
    assert business_checksum() == before


def test_an_unparseable_reply_is_retried(engine_with):
    replies = ["Sure! Here you go: SELECT COUNT(* FROM orders", "SELECT COUNT(*) AS n FROM orders", "1800 orders."]
    engine, llm = engine_with(replies)
    answer = sql_answer(engine, "How many orders are there?")
    assert len(answer.attempts) == 2 and "refused by the guard" in answer.attempts[0].error
    assert answer.rows == [{"n": 1800}] and answer.text == "1800 orders." and not answer.refused


def test_an_empty_result_is_an_answer(engine_with):
    engine, llm = engine_with(["SELECT id FROM orders WHERE YEAR(ordered_at) = 2019", "There were no orders in 2019."])
    answer = sql_answer(engine, "Which orders were placed in 2019?")
    assert answer.rows == [] and not answer.refused and len(answer.attempts) == 1
    assert answer.text == "There were no orders in 2019."
    assert EMPTY_HINT.strip() in llm.prompts[-1] and "(no rows)" in llm.prompts[-1]


def test_references_are_inferred_where_none_are_declared(db):
    db.execute("CREATE TABLE authors (id INT PRIMARY KEY, name VARCHAR(80))")
    db.execute("CREATE TABLE books (id INT PRIMARY KEY, author_id INT, title VARCHAR(200), genre VARCHAR(20))")
    db.execute("INSERT INTO authors VALUES (1, 'Tove Jansson')")
    db.execute("INSERT INTO books VALUES (1, 1, 'Comet in Moominland', 'novel'), (2, 1, 'The Summer Book', 'novel')")
    database = db.fetchall("SELECT DATABASE()")[0][0]
    describer = SchemaDescriber(db, database, ["authors", "books"])
    books = describer.describe("books")
    assert "author_id INT REFERENCES authors(id)" in books
    assert "genre VARCHAR(20)  -- values: 'novel'" in books
    assert StatementRepairs(describer).hint_for("Unknown column 'name' in 'field list'", ["books"]) == (
        "name is a column of authors. From books: JOIN authors ON authors.id = books.author_id, then use authors.name."
    )


def test_a_name_that_several_rows_share_is_described_as_not_unique_and_nothing_else_is(db):
    db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(80), city VARCHAR(40), email VARCHAR(80), "
        "nickname VARCHAR(40))"
    )
    db.execute("CREATE TABLE pets (id INT PRIMARY KEY, name VARCHAR(80))")
    db.execute("CREATE TABLE visits (person_id INT, day_name VARCHAR(20), PRIMARY KEY (person_id, day_name))")
    people = [
        (i, f"Person {i % 30}", f"City {i % 3}", f"p{i}@example.org", f"Nick {i}") for i in range(40)
    ]  # 30 names in 40 rows; 3 cities; unique e-mails and nicknames
    for table, rows in (
        ("people", people),
        ("pets", [(i, f"Pet {i}") for i in range(40)]),  # unique names
        ("visits", [(i, f"Day {i % 30}") for i in range(40)]),  # shared names, but no one-column key
    ):
        marks = ", ".join("(" + ", ".join("?" * len(rows[0])) + ")" for _ in rows)
        db.execute(f"INSERT INTO {table} VALUES {marks}", [value for row in rows for value in row])
    database = db.fetchall("SELECT DATABASE()")[0][0]
    describer = SchemaDescriber(db, database, ["people", "pets", "visits"])
    described = {t: describer.describe(t) for t in ("people", "pets", "visits")}
    name_line = next(line for line in described["people"].splitlines() if line.strip().startswith("name "))
    assert "not unique (30 values in 40 rows): to count or rank single people rows, GROUP BY id" in name_line
    assert described["people"].count("not unique") == 1  # not the listed city, the unique nickname or e-mail
    assert "not unique" not in described["pets"]  # every pet's name is its own
    assert "not unique" not in described["visits"]  # no one-column key to group by


def test_first_and_last_names_that_several_rows_share_together_get_the_line_above_the_question(db):
    """Each of a person's name columns has few values (every one is listed), so neither alone is a name
    that identifies a row; together they do, unless rows share them: a question asking which pilot
    gets the line above it. Few combinations (a league and a division) are categories, and unique
    combinations identify their rows: no line for either."""
    for table in ("pilots", "crew", "teams"):
        first, last = ("league_name", "division_name") if table == "teams" else ("first_name", "last_name")
        db.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, {first} VARCHAR(40), {last} VARCHAR(40))")
    combination = {"pilots": lambda i: i % 30, "crew": lambda i: i, "teams": lambda i: i % 6}
    for table, of in combination.items():
        rows = [(i, f"First {of(i) % 8}", f"Last {of(i) // 8}") for i in range(40)]
        marks = ", ".join("(?, ?, ?)" for _ in rows)
        db.execute(f"INSERT INTO {table} VALUES {marks}", [value for row in rows for value in row])
    database = db.fetchall("SELECT DATABASE()")[0][0]
    describer = SchemaDescriber(db, database, list(combination))
    described = {t: describer.describe(t) for t in combination}
    assert "values: 'First 0'" in described["pilots"]  # each column is still listed in full
    assert all("not unique" not in text for text in described.values())  # the schema text is unchanged
    assert describer.shared_name_hint("Which pilot flew the most?") == (
        "Rows can share a pilots.first_name and pilots.last_name: group by pilots.id."
    )
    assert describer.shared_name_hint("Which crew member flew the most?") == ""  # every pair is its own
    assert describer.shared_name_hint("Which team won the most?") == ""  # 6 combinations: categories


def test_a_question_over_a_shared_name_is_answered_by_the_key(engine_with, admin, project_settings):
    db = project_settings.sql.database
    top = admin.fetchall(
        f"SELECT c.id, c.name FROM `{db}`.orders o JOIN `{db}`.customers c ON c.id = o.customer_id "
        "GROUP BY c.id ORDER BY COUNT(*) DESC, c.id LIMIT 1"
    )[0]
    by_key = (
        "SELECT c.name, COUNT(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id "
        "GROUP BY c.id ORDER BY orders DESC, c.id LIMIT 1"
    )
    engine, llm = engine_with([by_key, f"{top[1]} placed the most orders."])
    answer = sql_answer(engine, "Which customer placed the most orders?")
    assert "GROUP BY id" in llm.prompts[0]  # the demo's customer names repeat: the schema says so
    # and so does a line right above the question, which names the table's rows
    assert "Rows can share a customers.name: group by customers.id.\nWhich customer placed" in llm.prompts[0]
    _, other = engine_with(["SELECT COUNT(*) FROM products", "8."])
    sql_answer(_, "How many products are there?")
    assert "Rows can share" not in other.prompts[0]  # a question about products: no such line
    assert answer.rows[0]["name"] == top[1] and "GROUP BY c.id" in answer.sql


def test_a_statement_grouped_by_a_shared_name_is_corrected_to_the_key(engine_with, admin, project_settings):
    """The model groups the demo's customers by their name (214 names for 400 customers): the defect
    check gives it back with the statement grouped by the key, and the answer counts single customers."""
    db = project_settings.sql.database
    most = admin.fetchall(f"SELECT COUNT(*) AS n FROM `{db}`.orders GROUP BY customer_id ORDER BY n DESC LIMIT 1")[0][0]
    by_name = (
        "SELECT customers.name, COUNT(*) AS n FROM customers JOIN orders ON customers.id = orders.customer_id "
        "GROUP BY customers.name ORDER BY n DESC LIMIT 1"
    )
    most_by_name = admin.fetchall(
        f"SELECT COUNT(*) AS n FROM `{db}`.orders o JOIN `{db}`.customers c ON c.id = o.customer_id "
        "GROUP BY c.name ORDER BY n DESC LIMIT 1"
    )[0][0]
    assert most_by_name > most  # the demo's data has the case this is about

    def script(prompt: str) -> str:
        if "Write a corrected statement" in prompt:
            assert "which several rows of customers share" in prompt
            return by_name.replace("GROUP BY customers.name", "GROUP BY customers.id")
        if prompt.rstrip().endswith("SQL:"):
            return by_name
        return "The customers who placed the most orders."

    engine, _ = engine_with(script)
    answer = sql_answer(engine, "Which customers placed the most orders?")
    assert "it groups by customers.name" in answer.attempts[0].error, answer.attempts[0].error
    assert "GROUP BY customers.id" in answer.sql and {row["n"] for row in answer.rows} == {most}


def test_a_hallucinated_table_gets_a_hint_with_the_columns_like_it(engine_with):
    def script(prompt: str) -> str:
        if "Write a corrected statement" in prompt:
            assert "There is no table customer_orders" in prompt and "orders.customer_id" in prompt
            return "SELECT COUNT(*) AS n FROM orders"
        if prompt.rstrip().endswith("SQL:"):
            return "SELECT COUNT(*) FROM customer_orders"
        return "1800 orders."

    engine, _ = engine_with(script)
    answer = sql_answer(engine, "How many orders are there?")
    assert "not one of the allowed tables" in answer.attempts[0].error and answer.rows == [{"n": 1800}]


def test_an_examples_file_that_is_not_a_list_of_pairs_is_a_clear_error(tmp_path):
    from kb.business_database.examples import load_sql_examples
    from kb.errors import KBError

    good = tmp_path / "good.yaml"
    good.write_text("- q: How many orders?\n  sql: SELECT COUNT(*) FROM orders\n")
    assert load_sql_examples(str(good)) == [("How many orders?", "SELECT COUNT(*) FROM orders")]
    (tmp_path / "bad.yaml").write_text("- q: How many orders?\n")
    with pytest.raises(KBError, match="item 1 of .*bad.yaml needs a q and an sql"):
        load_sql_examples(str(tmp_path / "bad.yaml"))
    with pytest.raises(KBError, match="cannot read .*missing.yaml"):
        load_sql_examples(str(tmp_path / "missing.yaml"))


def test_rows_that_tie_with_the_last_one_a_limit_kept_are_answered_too(engine_with, admin, project_settings):
    db = project_settings.sql.database
    counts = admin.fetchall(f"SELECT city, COUNT(*) AS n FROM `{db}`.customers GROUP BY city ORDER BY n DESC")
    top = [city for city, n in counts if n == counts[0][1]]
    assert len(top) > 1  # the demo data has a tie at the top: the case this is about
    most = "SELECT city FROM customers GROUP BY city ORDER BY COUNT(*) DESC LIMIT 1"
    engine, llm = engine_with([most, "Answer."])
    answer = sql_answer(engine, "Which city has the most customers?")
    assert sorted(r["city"] for r in answer.rows) == sorted(top) and answer.sql == most
    # kb writes the sentence: the offline model, told of the tie, still names one city
    assert all(city in answer.text for city in top) and f"are tied (COUNT(*) = {counts[0][1]} each)" in answer.text
    assert len(llm.prompts) == 1
    # tied rows that read the same add nothing; an alias or a position in ORDER BY is followed
    how_many = "SELECT COUNT(*) AS n FROM customers GROUP BY city ORDER BY n DESC LIMIT 1"
    engine, llm = engine_with([how_many, "Answer."])
    answer = sql_answer(engine, "How many customers live in the city that has the most customers?")
    assert answer.rows == [{"n": counts[0][1]}] and answer.text == "Answer." and len(llm.prompts) == 2
    engine, _ = engine_with(["SELECT city, COUNT(*) FROM customers GROUP BY city ORDER BY 2 DESC LIMIT 1", "A."])
    assert len(sql_answer(engine, "Which city has the most customers?").rows) == len(top)


@pytest.mark.parametrize(
    "question, table, named",
    [
        ("Which support tickets are open?", "support_tickets", True),
        ("Which customer spent the most?", "Customer", True),
        ("Which two customers spent the most?", "Customer", True),
        ("Which category has the most products?", "categories", True),
        ("What is the name of the customer who spent the most?", "customers", True),
        ("Name the pilot with the most flights.", "pilots", True),
        ("At which airport are the most pilots based?", "pilots", False),  # which airport, not which pilot
        ("How many support tickets are open?", "support_tickets", False),
        ("Which category has the most products?", "products", False),
        ("Is this customary?", "customers", False),
        ("How many orders are there?", "customers", False),
        ("Which media type has the most tracks?", "MediaType", True),  # CamelCase as words
        ("Which album's tracks are longest?", "Album", False),  # a possessive: which tracks
        ("Which customers' orders were refunded?", "customers", False),
    ],
)
def test_a_question_asks_which_rows_of_a_table_by_its_rows_noun(question, table, named):
    from kb.engines.sql.english import asks_which

    assert asks_which(question, table) is named


# joins each order to the customer whose id is the order's own: the "unrelated keys" defect
MISJOINED = (
    "SELECT c.name, COUNT(*) AS n FROM customers c JOIN orders o ON o.id = c.id "
    "GROUP BY c.id, c.name ORDER BY n DESC LIMIT 1"
)
MISJOINED_SAID = "the join condition o.id = c.id pairs the keys of two tables, orders and customers"
GROUPED = (
    "SELECT c.name, COUNT(*) AS n FROM customers c JOIN orders o ON o.customer_id = c.id "
    "GROUP BY c.id, c.name ORDER BY n DESC LIMIT 1"
)


def test_a_statement_that_joins_unrelated_keys_is_corrected_by_the_model(engine_with):
    def script(prompt: str) -> str:
        if "Write a corrected statement" in prompt:
            assert "JOIN orders AS o ON o.id = c.id" in prompt and MISJOINED_SAID in prompt
            return GROUPED
        return "Answer." if "Result (" in prompt else MISJOINED

    engine, llm = engine_with(script)
    answer = sql_answer(engine, "Which customer placed the most orders?")
    assert [a.error is None for a in answer.attempts] == [False, True]
    assert answer.attempts[0].error.startswith(f"it ran, but {MISJOINED_SAID}")
    assert answer.sql == GROUPED.replace(" c ", " AS c ").replace(" o ", " AS o ")
    assert answer.rows and set(answer.rows[0]) == {"name", "n"}


def test_a_defect_no_correction_mends_is_answered_as_written(engine_with, admin, project_settings):
    db = project_settings.sql.database
    written = "SELECT COUNT(*) FROM orders o JOIN customers c ON o.id = c.id WHERE o.status = 'cancelled'"
    gold = admin.fetchall(
        f"SELECT COUNT(*) FROM `{db}`.orders o JOIN `{db}`.customers c ON o.id = c.id WHERE o.status = 'cancelled'"
    )
    engine, llm = engine_with(lambda prompt: "Answer." if "Result (" in prompt else written)
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.attempts[0].error.startswith("it ran, but the join condition o.id = c.id pairs the keys of two")
    assert answer.attempts[-1].error is None and answer.sql == answer.attempts[0].sql
    assert answer.rows == [{"COUNT(*)": gold[0][0]}] and not answer.refused  # the rows of the statement as written


def test_a_statement_on_values_the_server_could_not_convert_is_corrected_by_the_model(engine_with):
    """YEAR() of a text column runs, with a warning per row: the model is told what the server said."""
    wrong = "SELECT COUNT(*) FROM customers WHERE YEAR(email) = 2024"
    right = "SELECT COUNT(*) FROM customers WHERE YEAR(created_at) = 2024"

    def script(prompt: str) -> str:
        if "Write a corrected statement" in prompt:
            assert "the server warned: Incorrect datetime value" in prompt and "email" in prompt
            assert "(customers's date/time columns: created_at)" in prompt  # the schema's, named
            return right
        return "Answer." if "Result (" in prompt else wrong

    engine, llm = engine_with(script)
    answer = sql_answer(engine, "How many customers signed up in 2024?")
    assert answer.attempts[0].error.startswith("it ran, but the server warned: Incorrect datetime value")
    assert answer.attempts[-1].error is None and answer.sql == right
    assert answer.rows and answer.rows[0]["COUNT(*)"] > 0  # the demo has 2024 sign-ups; the wrong one counted 0


def test_statements_the_server_converts_without_loss_have_no_warning(engine_with):
    """A date written as a string, a number compared with a DECIMAL, a text column's own function: no
    value is lost, so no warning and nothing to correct."""
    engine, _ = engine_with([])
    for sql, question in (
        (
            "SELECT COUNT(*) FROM orders WHERE ordered_at >= '2025-01-01' AND total > 100",
            "How many orders over 100 were placed since 2025?",
        ),
        (
            "SELECT COUNT(*) FROM customers WHERE YEAR(created_at) = '2024' AND name <> TRIM(name)",
            "How many customers who signed up in 2024 have spaces around their name?",
        ),
    ):
        ran = engine.run(engine.guard.check(sql))
        assert ran.rows is not None and ran.warning is None and engine.problems(ran, question) == []


def test_a_candidate_with_a_defect_is_never_counted(engine_with):
    greedy = "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"
    engine, llm = engine_with([greedy, MISJOINED, MISJOINED, "Answer."], candidates=4)
    answer = sql_answer(engine, "How many orders were cancelled?")
    # the fourth could at most tie with the greedy statement: not written
    assert answer.sql == greedy and answer.candidates == votes(written=3, ran=1, agreeing=1, greedy_chosen=True)


# runs clean and gives other rows than GROUPED: the biggest spender (an order by the fewest orders would
# tie hundreds of customers at one order and be in doubt: the "cut ties" check)
OTHER_RANKING = GROUPED.replace("COUNT(*)", "SUM(o.total)")


def sampled_after_corrections(samples: list[str], written: str = MISJOINED):
    """A scripted model whose greedy statement and every correction are ``written`` (by default
    ``MISJOINED``, which folds the rows into one), and whose further writes (the rescue samples) are
    ``samples`` in order."""
    writes = iter([written, *samples])

    def script(prompt: str) -> str:
        if "Result (" in prompt:
            return "Answer."
        return written if "Write a corrected statement" in prompt else next(writes)

    return script


def test_a_question_no_correction_mends_is_answered_by_two_agreeing_rescue_samples(engine_with, business_checksum):
    before = business_checksum()
    engine, llm = engine_with(sampled_after_corrections(["DELETE FROM orders", OTHER_RANKING, GROUPED, GROUPED]))
    answer = sql_answer(engine, "Which customer placed the most orders?")
    assert answer.attempts[0].error.startswith(f"it ran, but {MISJOINED_SAID}")
    assert answer.sql == GROUPED.replace(" c ", " AS c ").replace(" o ", " AS o ")  # not the first that ran clean
    assert answer.attempts[-1].sql == answer.sql and answer.attempts[-1].error is None
    # the refused sample is written but never run or counted; writing stops once two agree
    assert answer.candidates == votes(written=4, ran=3, agreeing=2, rescue=True)
    assert business_checksum() == before
    shown: list[str] = []
    print_answer_tail(answer, shown.append)  # what `kb sql` and `kb ask` print under the answer
    assert "[no attempt ran clean: 2 of 3 statements sampled again gave these rows]" in shown
    assert shown[1].startswith(f"SQL attempt 1 (failed: it ran, but {MISJOINED_SAID}")


def test_a_question_answered_by_rescue_samples_is_not_voted_on_again(engine_with):
    engine, llm = engine_with(sampled_after_corrections([GROUPED, GROUPED]), candidates=3)
    answer = sql_answer(engine, "Which customer placed the most orders?")
    assert answer.candidates == votes(written=2, ran=2, agreeing=2, rescue=True)
    writes = [p for p in llm.prompts if "Write a corrected statement" not in p and "Result (" not in p]
    assert len(writes) == 3  # the greedy statement and two rescue samples; no further candidates


def test_when_no_rescue_sample_runs_clean_more_are_written_for_the_correction_prompt_with_its_defect(engine_with):
    corrections = iter([MISJOINED, MISJOINED, GROUPED, GROUPED])  # the greedy correction, its retry, then samples

    def script(prompt: str) -> str:
        if "Result (" in prompt:
            return "Answer."
        return next(corrections) if "Write a corrected statement" in prompt else MISJOINED

    engine, llm = engine_with(script)
    answer = sql_answer(engine, "Which customer placed the most orders?")
    assert answer.sql == GROUPED.replace(" c ", " AS c ").replace(" o ", " AS o ")
    # four samples for the question's own prompt ran with the defect; two for the correction prompt agreed
    assert answer.candidates == votes(written=6, ran=2, agreeing=2, rescue=True)
    shown = [p for p in llm.prompts if "Write a corrected statement" in p][2:]
    assert len(shown) == 2
    assert all(f"Error: it ran, but {MISJOINED_SAID}" in p and "ON o.id = c.id" in p for p in shown)


def test_without_agreement_the_first_rescue_sample_that_ran_clean_answers(engine_with):
    unknown = "SELECT c.nickname FROM customers c"  # the server rejects it: not counted
    engine, llm = engine_with(sampled_after_corrections([unknown, MISJOINED, OTHER_RANKING, GROUPED]))
    answer = sql_answer(engine, "Which customer placed the most orders?")
    assert answer.sql == OTHER_RANKING.replace(" c ", " AS c ").replace(" o ", " AS o ")
    assert answer.candidates == votes(written=4, ran=2, agreeing=1, rescue=True)


def test_no_rescue_sample_is_written_when_rescue_is_off_or_an_attempt_ran_clean(engine_with):
    engine, llm = engine_with(sampled_after_corrections([GROUPED]), rescue_samples=0)
    answer = sql_answer(engine, "Which customer placed the most orders?")
    assert answer.sql == answer.attempts[0].sql and answer.candidates is None  # the defect, as written
    writes = [p for p in llm.prompts if "Write a corrected statement" not in p and "Result (" not in p]
    assert len(writes) == 1  # the greedy statement; then corrections and the answer only
    engine, llm = engine_with(["SELECT COUNT(*) AS n FROM orders", "Answer."])
    answer = sql_answer(engine, "How many orders are there?")
    assert len(llm.prompts) == 2 and answer.candidates is None  # the statement and the answer


def corrected_by_the_model(written: str, corrected: str, *told: str):
    """A scripted model that writes ``written``, and ``corrected`` when the correction prompt says all of ``told``."""

    def script(prompt: str) -> str:
        if "Write a corrected statement" in prompt:
            assert all(said in prompt for said in told), prompt
            return corrected
        return "Answer." if "Result (" in prompt else written

    return script


@pytest.fixture
def most_returned(admin, project_settings) -> str:
    """The name of the product returned most often, by the server's own count."""
    db = project_settings.sql.database
    return admin.fetchall(
        f"SELECT p.name FROM `{db}`.products p JOIN `{db}`.returns r ON r.product_id = p.id "
        "GROUP BY p.id, p.name ORDER BY COUNT(*) DESC LIMIT 1"
    )[0][0]


MOST_RETURNED = (
    "SELECT p.name FROM products p JOIN returns r ON r.product_id = p.id GROUP BY p.id, p.name "
    "ORDER BY COUNT(*) DESC LIMIT 1"
)


def test_ids_answering_which_rows_are_given_back_and_a_named_answer_is_not(engine_with, most_returned):
    """ "Which product ..." answered with product ids goes back to the model, told to select the name;
    the same ids for "How many returns per product" are an answer (must not fire)."""
    ids = "SELECT product_id FROM returns GROUP BY product_id ORDER BY COUNT(*) DESC LIMIT 1"
    told = "select products.name (JOIN products on its key) instead of the id"
    engine, llm = engine_with(corrected_by_the_model(ids, MOST_RETURNED, told))
    answer = sql_answer(engine, "Which product was returned most often?")
    assert answer.attempts[0].error.startswith("it ran, but it answers with returns.product_id, ids of products")
    assert answer.rows and answer.rows[0]["name"] == most_returned
    per_product = "SELECT product_id, COUNT(*) FROM returns GROUP BY product_id"
    engine, llm = engine_with(corrected_by_the_model(per_product, "", "nothing: never asked"))
    answer = sql_answer(engine, "How many returns were there per product?")
    assert len(answer.attempts) == 1 and answer.attempts[0].error is None


def test_columns_of_one_name_are_all_answered(engine_with):
    """A join selecting two tables' ``name`` columns keeps both in every row (a row is a dict)."""
    both = (
        "SELECT c.name, p.name FROM customers c JOIN orders o ON o.customer_id = c.id "
        "JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id ORDER BY o.id, i.id LIMIT 3"
    )
    engine, llm = engine_with([both, "Three purchases."])
    answer = sql_answer(engine, "Which customers bought which products? Give three.")
    assert answer.rows and all(set(row) == {"name", "name_2"} for row in answer.rows)
    assert "name | name_2" in llm.prompts[-1]  # the model reads both columns too
    products = {row[0] for row in engine.readonly.fetchall("SELECT name FROM products")}
    assert all(row["name_2"] in products for row in answer.rows)


def test_distinct_column_names_number_the_repeats_only():
    from kb.engines.sql.runner import distinct_column_names

    assert distinct_column_names(["name", "Name", "id", "name_2", "name"]) == [
        "name",
        "Name_2",
        "id",
        "name_2_2",
        "name_3",
    ]
    assert distinct_column_names(["a", "b"]) == ["a", "b"]


def test_the_answer_prompt_says_what_the_schema_says_of_the_result_columns(engine_with):
    """The demo's money columns are in EUR by their comments: the model writing the answer is shown
    that for the columns the result comes from (an alias placed in its table), and told to name a unit
    only where it is given; a result from columns without comments gets no such line."""
    refunded = "SELECT SUM(r.refund_amount) FROM returns r JOIN products p ON p.id = r.product_id WHERE p.name = 'x'"
    engine, llm = engine_with([refunded, "Nothing was refunded."])
    sql_answer(engine, "How much was refunded for returns of x?")
    answer_prompt = llm.prompts[-1]
    assert "The schema says: returns.refund_amount: EUR refunded; 0 when not refunded\nResult (" in answer_prompt
    assert "Name a currency or a unit only where the question, the result or the schema's notes give it." in (
        answer_prompt
    )
    engine, llm = engine_with(["SELECT COUNT(*) FROM orders WHERE status = 'placed'", "Answer."])
    sql_answer(engine, "How many orders are placed?")
    assert "The schema says" not in llm.prompts[-1]
    assert engine.column_notes("SELECT c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id") == (
        "The schema says: orders.total: order total in EUR\n"
    )
    assert engine.column_notes("not a statement") == ""


def test_the_answer_prompt_asks_for_every_row_of_a_result_of_several(engine_with):
    """Three customers share the name Karl Johansson: the model writing the answer is shown the three
    rows and told to name every one (benchmarks/sql_answers.py measures whether it does)."""
    written = "SELECT email FROM customers WHERE name = 'Karl Johansson'"
    engine, llm = engine_with([written, "Their addresses are ..."])
    answer = sql_answer(engine, "What is Karl Johansson's email address?")
    assert len(answer.rows) == 3
    prompt = llm.prompts[-1]
    assert "Result (3 rows):\nemail\nkarl.johansson.4@example.com\n" in prompt
    assert "When the result has several rows, the answer names every row with its values." in prompt


def test_rows_a_several_row_answer_leaves_out_are_listed_after_it(engine_with):
    """The model names one of three Karl Johanssons: kb keeps its sentence and lists the two others
    after it, streamed or not; the response's metadata says how many it listed."""
    written = "SELECT email FROM customers WHERE name = 'Karl Johansson'"
    engine, _ = engine_with([written, "Karl Johansson's email address is karl.johansson.4@example.com."])
    response = engine.query("What is Karl Johansson's email address?")
    emails = [row["email"] for row in response.metadata["rows"]]
    assert len(emails) == 3 and emails[0] == "karl.johansson.4@example.com"
    assert str(response) == (
        "Karl Johansson's email address is karl.johansson.4@example.com.\n\n"
        f"Also in the result (3 rows in all): {emails[1]}; {emails[2]}."
    )
    assert response.metadata["rows_left_out"] == 2

    streaming, _ = engine_with([written, "Karl Johansson's email address is karl.johansson.4@example.com."])
    streamed = streaming.respond(streaming.compute("What is Karl Johansson's email address?"), streaming=True)
    assert "".join(streamed.response_gen).endswith(f"(3 rows in all): {emails[1]}; {emails[2]}.")
    assert streamed.metadata["rows_left_out"] == 2


@pytest.mark.parametrize(
    "sql, answer",
    [
        (  # every row named (a number as commonly written)
            "SELECT status, COUNT(*) AS n FROM orders WHERE status IN ('placed', 'cancelled') GROUP BY status",
            "{rows}",
        ),
        ("SELECT COUNT(*) AS n FROM orders", "There are {rows} orders."),  # one row
        ("SELECT email FROM customers WHERE name = 'Nobody At All'", "There is no such customer."),  # none
        ("SELECT id FROM orders LIMIT 25", "There are 25 orders, among them order 1."),  # more rows than shown
        ("SELECT id FROM orders LIMIT 1250", "The result has 1,250 orders: 1, 2 and more."),  # its count written
    ],
)
def test_answers_that_name_every_row_or_give_a_long_results_count_get_no_note(engine_with, sql, answer):
    def script(prompt: str) -> str:
        if "Answer:" not in prompt:
            return sql
        rows = prompt.split("):\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        return answer.format(rows=", ".join(rows))

    engine, _ = engine_with(script, row_limit=2000)
    response = engine.query("A question about orders?")
    assert "Also in the result" not in str(response) and "rows_left_out" not in response.metadata
    assert "written from the first" not in str(response) and "rows_not_shown" not in response.metadata
    assert str(response).startswith(answer.split("{", 1)[0])


def test_an_answer_from_the_first_rows_of_a_long_result_says_so(engine_with):
    """More rows than the prompt shows whole: it shows the first 5, says so and asks for the count; an
    answer that names one customer's figure as if it were the whole answer is followed by kb's line
    saying it was written from the first 5 rows, streamed or not; a result cut at the row limit is
    "more than" its rows."""
    written = "SELECT customer_id, COUNT(*) AS orders FROM orders GROUP BY customer_id"
    one_row = "Customer 1 has placed 3 orders."
    engine, llm = engine_with([written, one_row], row_limit=5000)
    response = engine.query("How many orders has each customer placed?")
    rows = response.metadata["rows"]
    assert len(rows) > 20
    prompt = llm.prompts[-1]
    assert f"Result ({len(rows)} rows, the first 5 shown):" in prompt
    assert f'begin with "The result has {len(rows)} rows"' in prompt
    shown = prompt.split("shown):\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(shown) == 1 + 5  # the column names and five rows
    assert str(response) == f"{one_row}\n\nThe answer is written from the first 5 of the result's {len(rows)} rows."
    assert response.metadata["rows_not_shown"] == len(rows) - 5

    streaming, _ = engine_with([written, one_row], row_limit=5000)
    streamed = streaming.respond(streaming.compute("How many orders has each customer placed?"), streaming=True)
    assert "".join(streamed.response_gen).endswith(f"from the first 5 of the result's {len(rows)} rows.")

    cut, llm = engine_with([written, one_row], row_limit=30)
    response = cut.query("How many orders has each customer placed?")
    assert "Result (30 rows, cut at 30, the first 5 shown):" in llm.prompts[-1]
    assert 'begin with "The result has more than 30 rows"' in llm.prompts[-1]
    assert str(response).endswith("from the first 5 of the result's more than 30 rows.")


UNNAMED_COUNTS = "SELECT COUNT(*) FROM orders GROUP BY customer_id HAVING COUNT(*) > 9"  # a count per group, whose?
GROUPS_COUNTED = f"SELECT COUNT(*) FROM ({UNNAMED_COUNTS}) AS g"  # kb's rewrite: the number of those groups


def printed_under(answer) -> list[str]:
    """The lines `kb sql` and `kb ask` print under the answer."""
    shown: list[str] = []
    print_answer_tail(answer, shown.append)
    return shown


def test_a_rescue_sample_that_gives_the_rows_of_kbs_rewrite_answers_with_the_rewrite(engine_with):
    """The model's correction repeats ``UNNAMED_COUNTS``, ignoring the statement its defect message
    wrote (``GROUPS_COUNTED``); the first rescue sample that
    gives that statement's rows (written its own way) agrees with it, and the rewrite answers."""
    same_number = (
        "SELECT COUNT(*) FROM (SELECT customer_id FROM orders GROUP BY customer_id HAVING COUNT(*) > 9) AS heavy"
    )
    engine, llm = engine_with(
        sampled_after_corrections(["SELECT COUNT(*) FROM customers", same_number], UNNAMED_COUNTS)
    )
    answer = sql_answer(engine, "How many customers placed more than 9 orders?")
    assert answer.attempts[0].error.startswith("it ran, but it returns") and GROUPS_COUNTED in answer.attempts[0].error
    assert answer.sql == GROUPS_COUNTED and answer.attempts[-1].sql == GROUPS_COUNTED
    agreeing_rows = engine.run(engine.guard.check(same_number)).rows or []
    assert [list(row.values()) for row in answer.rows] == [list(row.values()) for row in agreeing_rows]
    assert answer.candidates == votes(written=2, ran=2, agreeing=1, rescue=True, rewrite_answered=True)
    assert answer.attempts[-1].written_by == "kb" and answer.attempts[0].written_by == "model"
    shown = printed_under(answer)
    assert any("as did kb's rewrite of a statement with a defect" in line for line in shown)


@pytest.mark.parametrize("rewrites_answer", [True, False])
def test_kbs_rewrite_answers_alone_only_with_sql_rewrites_answer(engine_with, rewrites_answer):
    """No rescue sample gives the rewrite's rows and no two agree. With ``rewrites_answer`` the rewrite
    answers, not the first sample that ran clean, and not the statement with the defect when no
    sample ran clean at all; without it (the default) kb's statement never answers alone: the first
    sample that ran clean does, and with none, the model's statement with the defect, as written.
    Must not fire either way: two samples that agree on other rows answer over the rewrite."""
    question = "How many customers placed more than 9 orders?"
    guesses = [f"SELECT COUNT(*) FROM customers WHERE id > {n}" for n in (0, 10, 20, 30)]  # four other numbers
    engine, llm = engine_with(sampled_after_corrections(guesses, UNNAMED_COUNTS), rewrites_answer=rewrites_answer)
    answer = sql_answer(engine, question)
    if rewrites_answer:
        assert answer.sql == GROUPS_COUNTED and answer.attempts[-1].sql == GROUPS_COUNTED
        assert answer.candidates == votes(written=4, ran=4, agreeing=0, rescue=True, rewrite_answered=True)
        shown = printed_under(answer)
        assert (
            "[no attempt ran clean: these rows are kb's rewrite of a statement with a defect's; no two of 4"
            in "\n".join(shown)
        )
    else:
        assert answer.sql == guesses[0] and answer.candidates["rewrite_answered"] is False
        assert answer.attempts[-1].written_by == "model"
        assert answer.candidates["agreeing"] == 1 and GROUPS_COUNTED not in [a.sql for a in answer.attempts]

    nothing_clean = ["SELECT c.nickname FROM customers c"] * 8  # the server rejects every sample
    engine, llm = engine_with(sampled_after_corrections(nothing_clean, UNNAMED_COUNTS), rewrites_answer=rewrites_answer)
    answer = sql_answer(engine, question)
    if rewrites_answer:
        assert answer.sql == GROUPS_COUNTED and answer.candidates["ran"] == 0
    else:
        assert answer.sql == UNNAMED_COUNTS and answer.candidates["rewrite_answered"] is False

    agreeing = ["SELECT COUNT(*) FROM customers", "SELECT COUNT(id) FROM customers"]
    engine, llm = engine_with(sampled_after_corrections(agreeing, UNNAMED_COUNTS), rewrites_answer=rewrites_answer)
    answer = sql_answer(engine, question)
    assert answer.sql == "SELECT COUNT(*) FROM customers" and answer.candidates["rewrite_answered"] is False
    assert answer.candidates["agreeing"] == 2


@pytest.mark.parametrize("checks", ["all", "statement", "none"])
def test_sql_checks_says_which_checks_a_statement_that_ran_goes_through(engine_with, admin, project_settings, checks):
    """sql.checks: with "statement" no check reads the question (its trigger words, "which
    customer", leave the customer ids alone), while a statement-only defect is still sent back;
    with "none" both statements answer as the model wrote them."""
    db = project_settings.sql.database
    top = admin.fetchall(
        f"SELECT customer_id FROM `{db}`.orders GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT 1"
    )[0][0]
    ids = "SELECT customer_id FROM orders GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT 1"
    engine, llm = engine_with(
        corrected_by_the_model(ids, GROUPED, "the question asks which customers"), checks=checks, rescue_samples=0
    )
    answer = sql_answer(engine, "Which customer placed the most orders?")
    if checks == "all":
        assert answer.attempts[0].error.startswith("it ran, but it answers with orders.customer_id, ids of customers")
    else:
        assert len(answer.attempts) == 1 and answer.attempts[0].error is None
        assert answer.rows == [{"customer_id": top}]
    engine, llm = engine_with(
        corrected_by_the_model(MISJOINED, GROUPED, MISJOINED_SAID), checks=checks, rescue_samples=0
    )
    answer = sql_answer(engine, "Which customer placed the most orders?")
    if checks == "none":
        assert len(answer.attempts) == 1 and answer.attempts[0].error is None
        assert answer.sql == engine.guard.check(MISJOINED).sql
    else:
        assert MISJOINED_SAID in (answer.attempts[0].error or ""), answer.attempts[0].error
        assert len(answer.attempts) == 2


def test_sql_checks_is_a_setting_of_the_knowledge_base(local_embed, business):
    config = {"database": {"name": "kb_test_checks"}, "sql": {"checks": "none", "candidates": 1}}
    llm = ScriptedLLM(lambda prompt: "Answer." if "Result (" in prompt else MISJOINED)
    kb = KnowledgeBase.from_config(config, embed_model=local_embed, llm=llm)
    try:
        assert kb.sql_engine.checks == "none"
        assert kb.sql_engine.rewrites_answer is False  # the default: kb's statement never answers alone
        response = kb.sql_engine.query("Which customer placed the most orders?")
    finally:
        kb.close()
    assert "o.id = c.id" in response.metadata["sql_query"] and len(response.metadata["attempts"]) == 1


def test_sql_rewrites_answer_is_a_setting_of_the_knowledge_base(local_embed, business):
    """sql.rewrites_answer: true reaches the engine, and there kb's rewrite answers alone (the rows of
    the count of groups, not the first sample's)."""
    config = {"database": {"name": "kb_test_checks"}, "sql": {"rewrites_answer": True, "candidates": 1}}
    guesses = [f"SELECT COUNT(*) FROM customers WHERE id > {n}" for n in (0, 10, 20, 30)]
    kb = KnowledgeBase.from_config(
        config, embed_model=local_embed, llm=ScriptedLLM(sampled_after_corrections(guesses, UNNAMED_COUNTS))
    )
    try:
        assert kb.sql_engine.rewrites_answer is True
        response = kb.sql_engine.query("How many customers placed more than 9 orders?")
    finally:
        kb.close()
    assert response.metadata["sql_query"] == GROUPS_COUNTED


def test_every_sql_setting_the_engine_takes_reaches_it(local_embed, business):
    """The sql.* settings reach the engine by their names (kb.business_database.sql_engine.engine_settings)."""
    chosen = {
        "candidates": 2,
        "rescue_samples": 1,
        "rescue_temperature": 0.7,
        "sample_temperature": 0.5,
        "candidate_source": "samples",
        "checks": "statement",
        "rewrites_answer": True,
        "row_limit": 77,
        "timeout_s": 3.0,
    }
    config = {"database": {"name": "kb_test_checks"}, "sql": {**chosen, "skip_checks": ["unrelated keys"]}}
    kb = KnowledgeBase.from_config(config, embed_model=local_embed, llm=ScriptedLLM(lambda prompt: "SELECT 1"))
    try:
        engine = kb.sql_engine
        assert {name: getattr(engine, name) for name in chosen} == chosen
        assert engine.skip_checks == frozenset({"unrelated keys"})
    finally:
        kb.close()


def test_sql_skip_checks_switches_checks_off_by_name(local_embed, business):
    """sql.skip_checks: a join of unrelated keys is no longer sent back (nor its counts, all 1, that
    tie every customer: "cut ties"); a name no check has is a configuration error that lists the checks."""
    config = {
        "database": {"name": "kb_test_checks"},
        "sql": {"skip_checks": ["unrelated keys", "cut ties"], "candidates": 1, "rescue_samples": 0},
    }
    llm = ScriptedLLM(lambda prompt: "Answer." if "Result (" in prompt else MISJOINED)
    kb = KnowledgeBase.from_config(config, embed_model=local_embed, llm=llm)
    try:
        response = kb.sql_engine.query("Which customer placed the most orders?")
    finally:
        kb.close()
    assert "o.id = c.id" in response.metadata["sql_query"] and len(response.metadata["attempts"]) == 1
    with pytest.raises(ConfigError, match="no check is named 'collapsed aggregates'; the checks: .*unrelated keys"):
        KnowledgeBase.from_config({"sql": {"skip_checks": ["collapsed aggregates"]}}, embed_model=local_embed, llm=llm)


def test_an_ambiguous_column_the_joins_tie_is_qualified_by_kb(engine_with, admin, project_settings):
    """The server refuses ``customer_id`` of two joined tables as ambiguous; the join's equality makes
    them one value, so kb qualifies it itself and the model is not asked again."""
    db = project_settings.sql.database
    written = (
        "SELECT COUNT(DISTINCT customer_id) AS n FROM orders o JOIN support_tickets t ON t.customer_id = o.customer_id"
    )
    engine, llm = engine_with(corrected_by_the_model(written, "", "nothing: never asked"))
    answer = sql_answer(engine, "How many customers have both ordered and opened a support ticket?")
    assert "ambiguous" in answer.attempts[0].error and answer.attempts[-1].error is None
    assert "COUNT(DISTINCT o.customer_id)" in answer.sql
    # the answer says the statement is kb's: in its attempts and where kb sql prints it
    assert [a.written_by for a in answer.attempts] == ["model", "kb"]
    shown = printed_under(answer)
    assert shown[shown.index(f"SQL: {answer.sql}") + 1] == (
        "[this statement was written by kb (a repair or a rewrite), not by the model]"
    )
    both = admin.fetchall(
        f"SELECT COUNT(DISTINCT customer_id) FROM `{db}`.support_tickets WHERE customer_id IN (SELECT customer_id FROM `{db}`.orders)"
    )[0][0]
    assert answer.rows == [{"n": both}] and not any("Write a corrected statement" in p for p in llm.prompts)


def test_kb_repairs_do_not_use_up_the_models_attempts(engine_with):
    # the greedy statement lacks a join kb adds; the repaired one still names a column no table has,
    # so the model corrects it: three statements of the model's own, kb's repair besides
    corrections = iter(range(100))

    def script(prompt: str) -> str:
        if "Write a corrected statement" in prompt:
            return f"SELECT COUNT(*) FROM returns WHERE no_such_column > {next(corrections)}"
        return WRONG + " AND no_such_column = 1"

    engine, llm = engine_with(script, rescue_samples=0)
    answer = sql_answer(engine, LATE)
    assert len([p for p in llm.prompts if p.rstrip().endswith("SQL:")]) == engine.max_attempts == 3
    assert len(answer.attempts) == 4 and all(a.error for a in answer.attempts)
    assert "Unknown column 'delivered_at'" in answer.attempts[0].error
    assert "JOIN orders" in answer.attempts[1].sql and "no_such_column" in answer.attempts[1].error
    assert [a.sql.endswith(f"> {n}") for n, a in enumerate(answer.attempts[2:])] == [True, True]


def given_back(engine_with, question: str, written: str, corrected: str, told: str, defect: str):
    """The engine and answer where the model writes ``written``, kb finds it ran with ``defect`` (the
    start of its message) and, the correction prompt saying ``told``, the model's ``corrected`` answers."""
    engine, _ = engine_with(corrected_by_the_model(written, corrected, told))
    answer = sql_answer(engine, question)
    assert answer.attempts[0].error.startswith(f"it ran, but {defect}"), answer.attempts[0].error
    assert answer.attempts[-1].error is None and answer.sql == engine.guard.check(corrected).sql
    return engine, answer


def test_a_rescue_sample_with_a_defect_is_shown_mended_when_no_attempt_ran(engine_with, admin, project_settings):
    """The greedy statement names a table that does not exist and its correction repeats it: no
    attempt ran. The rescue samples for the question's own prompt run with a defect (ids where the
    question asks which customer); the first of them is shown with its defect in the correction
    prompt, and the samples written for it answer."""
    question = "Which customer placed the most orders?"
    missing = "SELECT name, COUNT(*) FROM clients GROUP BY name"
    ids = "SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id ORDER BY n DESC LIMIT 1"
    named = GROUPED
    written = iter(range(100))

    def script(prompt: str) -> str:
        if "Result (" in prompt:
            return "Answer."
        if "Write a corrected statement" in prompt:
            return named if "the question asks which customers" in prompt else missing
        return missing if next(written) == 0 else ids  # the greedy statement, then the samples

    engine, llm = engine_with(script)
    answer = sql_answer(engine, question)
    assert "refused by the guard" in answer.attempts[0].error and answer.sql == answer.attempts[-1].sql
    assert "JOIN orders" in answer.sql and answer.rows and all(set(row) == {"name", "n"} for row in answer.rows)
    # every sample for the question's own prompt ran with the defect; two for the correction prompt agreed
    assert answer.candidates["rescue"] and answer.candidates["written"] == engine.rescue_samples + 2
    assert answer.candidates["agreeing"] == 2


@pytest.mark.parametrize(
    "answer, gives",
    [
        ("There are 322 customers.", True),
        ("322 customers have opened tickets.", True),
        ("The result has 1,250 rows.", True),
        ("The result has 1250 rows.", True),
        ("Customer 3220 has opened 2 tickets.", False),  # another number that contains it
        ("The total is 322.50 EUR.", False),  # a decimal
        ("Order 1322 is the latest.", False),
        ("Ida Andersson has opened 2 support tickets.", False),
    ],
)
def test_gives_row_count_reads_the_number_alone(answer, gives):
    count = 1250 if "1,250" in answer or "1250" in answer else 322
    assert gives_row_count(answer, count) is gives


def cancelled_orders_over_two_tables(engine_with, wide_schema: str, embed_model):
    """ "How many orders were cancelled?" on an engine that shows two tables a prompt at most (the
    demo has six) in the ``wide_schema`` form, with candidates from the other prompts: the greedy
    statement is outvoted by the two others'. The engine, its scripted LLM and the answer."""
    greedy, voted = "SELECT COUNT(*) FROM orders", "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"
    engine, llm = engine_with(
        [greedy, voted, voted, "Answer."],
        candidates=3,
        candidate_source="prompts",
        max_tables_in_prompt=2,
        wide_schema=wide_schema,
        embed_model=embed_model,
    )
    answer = sql_answer(engine, "How many orders were cancelled?")
    assert answer.sql == voted
    return engine, llm, answer


def test_above_the_tables_a_prompt_holds_each_prompt_shows_the_tables_retrieved_by_one_shared_index(
    engine_with, local_embed
):
    built = []

    def embed_model():
        built.append(1)
        return local_embed

    engine, llm, answer = cancelled_orders_over_two_tables(engine_with, "retrieved", embed_model)
    assert answer.candidates["agreeing"] == 2
    for prompt, shown in zip(llm.prompts[:3], ("CREATE TABLE ", "Table '", "CREATE TABLE ")):
        assert prompt.count(shown) == 2, prompt  # two of the demo's tables, orders among them
        assert f"{shown}orders" in prompt, prompt
    assert len(built) == 1  # the tables are embedded once, for every writer


def test_above_the_tables_a_prompt_holds_kb_prompts_show_every_tables_catalogue_entry(engine_with, local_embed):
    """With ``wide_schema: catalogue``, kb's prompts show one line per table, every table
    in every prompt; LlamaIndex's own description of the tables (a candidate's prompt) shows the
    retrieved ones."""
    engine, llm, _ = cancelled_orders_over_two_tables(engine_with, "catalogue", lambda: local_embed)
    assert engine.reading.form == "catalogue" and engine.reading.catalogue_tokens > 0
    kb_prompt, llamaindex_description, llamaindex_prompt = llm.prompts[:3]
    for prompt in (kb_prompt, llamaindex_prompt):
        assert "CREATE TABLE" not in prompt
        for table in BUSINESS_TABLES:
            assert f"\n{table}(" in prompt, prompt
    assert "customer_id -> customers.id" in kb_prompt  # a reference, in the catalogue's words
    assert llamaindex_description.count("Table '") == 2 and "Table 'orders'" in llamaindex_description


def test_tables_that_do_not_fit_the_context_window_are_retrieved_in_schema_order_for_every_prompt(
    business, local_embed
):
    """A schema longer than the LLM's context window leaves room for is not sent whole: each prompt
    shows the tables closest to the question that fit, in the schema's order (so prompts share their
    start), and a correction prompt shows the same tables as the first."""
    from kb.engines.context import token_counter
    from kb.engines.sql.writers import RETRIEVED_LISTED, schema_token_budget

    question = "How many orders were cancelled?"
    failed = "SELECT COUNT(*) FROM orders WHERE state = 'cancelled'"
    corrected = "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'"
    roomy = ScriptedLLM([])
    whole = SQLEngine(roomy, MariaDBConnection(business), database="kb_business", tables=BUSINESS_TABLES)
    count = token_counter(roomy)
    sizes = {t: count(whole.sql_database.get_single_table_info(t)) for t in BUSINESS_TABLES}
    assert sum(sizes.values()) <= schema_token_budget(roomy, "")  # the demo's schema fits 4096 tokens whole
    over = sum(sizes.values()) // 2  # room for about half of the schema
    llm = ScriptedLLM([failed, corrected, "Answer."], context_window=roomy.context_window)
    llm.context_window += over - schema_token_budget(llm, "")
    engine = SQLEngine(
        llm,
        MariaDBConnection(business),
        database="kb_business",
        tables=BUSINESS_TABLES,
        candidates=1,
        wide_schema="retrieved",
        embed_model=lambda: local_embed,
    )
    answer = sql_answer(engine, question)
    assert answer.sql == corrected
    first, correction = llm.prompts[0], llm.prompts[1]
    shown = [t for t in BUSINESS_TABLES if f"CREATE TABLE {t} " in first]
    assert "orders" in shown and 0 < len(shown) < len(BUSINESS_TABLES)
    shown_sizes = [count(whole.sql_database.as_compact(RETRIEVED_LISTED).get_single_table_info(t)) for t in shown]
    assert sum(shown_sizes) <= over or len(shown) == 1  # as the prompt shows them: value lists cut
    positions = [first.index(f"CREATE TABLE {t} ") for t in shown]
    assert positions == sorted(positions)  # the schema's order, not the retrieval's
    assert "This statement was written for the question but failed" in correction
    assert [t for t in BUSINESS_TABLES if f"CREATE TABLE {t} " in correction] == shown


def test_a_day_cut_at_its_midnight_goes_back_to_the_model_and_its_correction_answers(
    engine_with, admin, project_settings
):
    """``opened_at`` holds times of day: the greedy statement's BETWEEN ends at midnight of March 31 and
    loses that day's tickets. The model is shown the defect with kb's statement (on ``DATE(opened_at)``);
    its correction runs clean and answers with every March ticket."""
    cut = "SELECT COUNT(*) FROM support_tickets WHERE opened_at BETWEEN '2025-03-01' AND '2025-03-31'"
    whole = "SELECT COUNT(*) FROM support_tickets WHERE DATE(opened_at) BETWEEN '2025-03-01' AND '2025-03-31'"
    engine, llm = engine_with([cut, whole, "Answer."])
    answer = sql_answer(engine, "How many support tickets were opened in March 2025?")
    db = project_settings.sql.database
    march = admin.fetchall(
        f"SELECT COUNT(*) FROM `{db}`.support_tickets WHERE opened_at >= '2025-03-01' AND opened_at < '2025-04-01'"
    )[0][0]
    assert march > admin.fetchall(cut.replace("FROM ", f"FROM `{db}`."))[0][0]  # the cut one loses tickets here
    assert answer.attempts[0].error.startswith("it ran, but opened_at holds times of day")
    assert "DATE(opened_at) BETWEEN '2025-03-01' AND '2025-03-31'" in llm.prompts[1]
    assert answer.rows == [{"COUNT(*)": march}] and answer.sql == whole


@pytest.mark.parametrize(
    "question, flawed, said, right",
    [
        (
            "How many orders did each country's customers place?",
            "SELECT c.country, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id",
            "selects c.country beside COUNT(*) without GROUP BY",
            "SELECT c.country, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.country",
        ),
        (
            "What is the total of the orders that had a return?",
            "SELECT SUM(o.total) FROM orders o JOIN returns r ON r.order_id = o.id",
            "joins returns on",
            "SELECT SUM(o.total) FROM orders o WHERE o.id IN (SELECT order_id FROM returns)",
        ),
        (
            "How many customers have an order?",
            "SELECT COUNT(*) FROM customers c WHERE c.id IN (SELECT o.customer_id FROM orders o WHERE c.id = c.id)",
            "compares c.id with itself",
            "SELECT COUNT(*) FROM customers c WHERE c.id IN (SELECT o.customer_id FROM orders o)",
        ),
        (
            "How many orders had no return of a faulty product?",
            "SELECT COUNT(*) FROM orders WHERE customer_id NOT IN (SELECT customer_id FROM returns WHERE reason = 'faulty')",
            "the subquery on returns selects customer_id, which returns does not have",
            "SELECT COUNT(*) FROM orders WHERE id NOT IN (SELECT order_id FROM returns WHERE reason = 'faulty')",
        ),
        (
            "What is the average number of days from order to delivery?",
            "SELECT AVG(delivered_at - ordered_at) FROM orders",
            "subtracts two dates as numbers",
            "SELECT AVG(DATEDIFF(delivered_at, ordered_at)) FROM orders",
        ),
        (
            "Which customer placed the most orders?",
            "SELECT name FROM customers GROUP BY id ORDER BY COUNT(*) DESC LIMIT 1",
            "every group is one row",
            "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name "
            "ORDER BY COUNT(*) DESC LIMIT 1",
        ),
        (
            "How many customers live in a city whose name starts with Gothen?",
            "SELECT COUNT(*) FROM customers WHERE name LIKE 'Gothen%'",
            "no value of customers.name is like 'Gothen%'",
            "SELECT COUNT(*) FROM customers WHERE city LIKE 'Gothen%'",
        ),
    ],
    ids=[
        "arbitrary row",
        "unused join",
        "compared with itself",
        "outer column",
        "dates subtracted",
        "counts of one",
        "pattern of another column",
    ],
)
def test_each_result_check_sends_its_statement_back_and_leaves_the_right_one_alone(
    engine_with, question, flawed, said, right
):
    """Through ``SQLEngine.query``: the flawed statement is found and given back to the model with its
    defect, and the corrected statement answers; asked again with the right statement first, it
    answers alone, untouched."""
    engine, llm = engine_with([flawed, right, "Answer."])
    answer = sql_answer(engine, question)
    assert answer.attempts[0].error.startswith("it ran, but ") and said in answer.attempts[0].error
    assert said in llm.prompts[1] and answer.sql == engine.guard.check(right).sql and answer.rows

    engine, llm = engine_with([right, "Answer."])
    answer = sql_answer(engine, question)
    assert len(answer.attempts) == 1 and not answer.attempts[0].error and answer.sql == engine.guard.check(right).sql
    assert not any("Write a corrected statement" in prompt for prompt in llm.prompts)


def test_a_join_on_half_of_a_composite_reference_goes_back_and_the_right_join_answers_untouched(db):
    """The line references an offer by (part, supplier); the model's join by the part alone counts each
    line once per supplier of its part. kb's check sends it back with the whole key; the join of the
    line's part to the part table is left alone (it is what ``part_supplier.part_id`` references)."""
    from test_sql_defects import COMPOSITE_SCHEMA, COMPOSITE_TABLES

    for statement in COMPOSITE_SCHEMA:
        db.execute(statement)
    database = db.fetchall("SELECT DATABASE()")[0][0]
    question = "What did the ordered lines cost?"
    half = "SELECT SUM(l.quantity * ps.cost) AS spent FROM line l JOIN part_supplier ps ON ps.part_id = l.part_id"
    whole = half + " AND ps.supplier_id = l.supplier_id"
    engine = SQLEngine(
        ScriptedLLM([half, whole, "Answer."]), db, database=database, tables=COMPOSITE_TABLES, candidates=1
    )
    answer = sql_answer(engine, question)
    assert answer.attempts[0].error.startswith("it ran, but it pairs line with part_supplier on l.part_id = ps.part_id")
    assert answer.sql == engine.guard.check(whole).sql and float(answer.rows[0]["spent"]) == 42.0

    by_part = "SELECT p.name, SUM(l.quantity) AS n FROM line l JOIN part p ON l.part_id = p.id GROUP BY p.id, p.name"
    llm = ScriptedLLM([by_part, "Answer."])
    engine = SQLEngine(llm, db, database=database, tables=COMPOSITE_TABLES, candidates=1)
    answer = sql_answer(engine, "How many of each part were ordered?")
    assert len(answer.attempts) == 1 and answer.attempts[0].error is None
    assert sorted((r["name"], int(r["n"])) for r in answer.rows) == [("bolt", 15), ("nut", 7)]
    assert "FOREIGN KEY (part_id, supplier_id) REFERENCES part_supplier(part_id, supplier_id)" in llm.prompts[0]


def test_sql_skip_repairs_leaves_a_named_repair_to_the_model(local_embed, business, late_returns):
    """sql.skip_repairs: with "missing join" off, the unknown column goes back to the model (with the
    hint where the column is) instead of kb joining it; a name no repair has is a configuration error
    that lists the repairs."""
    config = {
        "database": {"name": "kb_test_checks"},
        "sql": {"skip_repairs": ["missing join"], "candidates": 1, "rescue_samples": 0},
    }
    llm = ScriptedLLM(lambda prompt: "Answer." if "Result (" in prompt else (RIGHT if "Error:" in prompt else WRONG))
    kb = KnowledgeBase.from_config(config, embed_model=local_embed, llm=llm)
    try:
        assert kb.sql_engine.skip_repairs == frozenset({"missing join"})
        response = kb.sql_engine.query(LATE)
    finally:
        kb.close()
    attempts = response.metadata["attempts"]
    assert [a["written_by"] for a in attempts] == ["model", "model"] and "Unknown column" in attempts[0]["error"]
    assert response.metadata["rows"] == [{"late": late_returns}]
    assert any("delivered_at is a column of orders" in prompt for prompt in llm.prompts)  # the hint stays
    with pytest.raises(ConfigError, match="no repair is named 'add join'; the repairs: .*missing join"):
        KnowledgeBase.from_config({"sql": {"skip_repairs": ["add join"]}}, embed_model=local_embed, llm=llm)


def test_a_correction_that_drops_a_needed_group_by_is_sent_back_not_answered(engine_with):
    """Each correction is checked like the first statement: one that fixes the defect it was shown but
    drops the GROUP BY (one arbitrary country beside the count of every order) goes back to the model
    in its turn, and the statement that keeps both answers."""
    flawed = (
        "SELECT c.country, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id "
        "WHERE c.id = c.id GROUP BY c.country"
    )
    dropped = "SELECT c.country, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id"
    right = "SELECT c.country, COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.country"
    engine, llm = engine_with([flawed, dropped, right, "Answer."])
    answer = sql_answer(engine, "How many orders did each country's customers place?")
    errors = [a.error or "" for a in answer.attempts]
    assert "compares c.id with itself" in errors[0]
    assert errors[1].startswith("it ran, but ") and "without GROUP BY" in errors[1]
    assert answer.sql == engine.guard.check(right).sql and len(answer.rows) > 1


def test_a_limit_that_cuts_through_many_ties_is_in_doubt_and_a_unique_order_answers_alone(
    engine_with, admin, project_settings
):
    """Ordered by a country hundreds of customers share, LIMIT 1 keeps an arbitrary one: the statement
    goes back to the model (the "cut ties" check), and the answer is the corrected statement's, never a
    list of every tied row. Ordered by the key, the same LIMIT answers alone."""
    db = project_settings.sql.database
    biggest = admin.fetchall(f"SELECT COUNT(*) FROM `{db}`.customers GROUP BY country ORDER BY COUNT(*) LIMIT 1")[0][0]
    assert biggest > 21  # every country is shared by more customers than kb reads past the limit
    arbitrary = "SELECT name FROM customers ORDER BY country LIMIT 1"
    right = (
        "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name "
        "ORDER BY COUNT(*) DESC, c.id LIMIT 1"
    )
    engine, llm = engine_with([arbitrary, right, "Answer."])
    answer = sql_answer(engine, "Which customer placed the most orders?")
    assert answer.attempts[0].error.startswith("it ran, but it keeps the first row ordered by country")
    assert "many more rows have the same country" in llm.prompts[1]
    assert answer.sql == engine.guard.check(right).sql and len(answer.rows) == 1

    engine, llm = engine_with(["SELECT name FROM customers ORDER BY id LIMIT 1", "Answer."])
    answer = sql_answer(engine, "Which customer signed up first?")
    assert len(answer.attempts) == 1 and answer.attempts[0].error is None and len(answer.rows) == 1

    # hundreds of customers tie at the smallest number of orders, and every one reads the same: the
    # LIMIT keeps the same answer whichever of them it meets first, so the statement is not in doubt
    fewest = admin.fetchall(f"SELECT COUNT(*) AS n FROM `{db}`.orders GROUP BY customer_id ORDER BY n LIMIT 1")[0][0]
    engine, llm = engine_with(["SELECT COUNT(*) AS n FROM orders GROUP BY customer_id ORDER BY n LIMIT 1", "Answer."])
    answer = sql_answer(engine, "What is the smallest number of orders a customer has placed?")
    assert len(answer.attempts) == 1 and answer.attempts[0].error is None, answer.attempts[0].error
    assert answer.rows == [{"n": fewest}]
