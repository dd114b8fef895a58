"""The router: offline selector accuracy, LLM selector validation, the both route, the CLI, the demo."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from scripted_llm import ScriptedLLM

from kb.business_database.provisioning import DATA
from kb.engines.selectors import LLMSelector, OfflineSelector, parse_route
from kb.knowledge_base import KnowledgeBase
from kb.stores.connection import MariaDBConnection

QUESTIONS = yaml.safe_load((Path(__file__).parent / "data" / "route_questions.yaml").read_text())


def make_kb(db_url, business, llm, embed, **router):
    config = {
        "database": {"url": db_url.render_as_string(hide_password=False)},
        "sql": {"url": business.render_as_string(hide_password=False)},
        "router": router,
    }
    kb = KnowledgeBase.from_config(config, llm=llm, embed_model=embed)
    kb.index_directory(DATA / "docs", progress=False)
    return kb


def test_labelled_set_covers_every_route():  # else the accuracy test below could pass on one route
    assert {q["route"] for q in QUESTIONS} == {"documents", "database", "both"}


def test_offline_selector_accuracy(db_url, business, local_embed):
    kb = make_kb(db_url, business, ScriptedLLM([]), local_embed, selector="offline")
    decisions = [(q, kb.route(q["q"])) for q in QUESTIONS]
    correct = sum(d.route == q["route"] for q, d in decisions)
    misses = [(q["q"], q["route"], d.route) for q, d in decisions if d.route != q["route"]]
    accuracy = correct / len(QUESTIONS)
    print(f"offline selector accuracy: {correct}/{len(QUESTIONS)} = {accuracy:.0%}; misses: {misses}")
    assert accuracy >= 0.9, misses
    assert all(d.reason and d.selector == "offline" for _, d in decisions)


@pytest.mark.parametrize(
    "reply, route",
    [
        ("both", "both"),
        ("Database.", "database"),
        (" documents\n", "documents"),
        ("2", "database"),
        ("3", "both"),
        ("1", "documents"),
    ],
)
def test_parse_route_accepts_only_valid_choices(reply, route):
    assert parse_route(reply) == route


@pytest.mark.parametrize("reply", ["0", "4", "-1", "", '{"route": 2}', "I think documents", "sql", "docs"])
def test_invalid_llm_replies_fall_back_instead_of_guessing(reply, local_embed):
    offline = OfflineSelector(
        local_embed,
        ["orders table: id, total, ordered_at", "How many orders are there?"],
        ["Return Policy", "What does the return policy say?"],
    )
    selector = LLMSelector(ScriptedLLM([reply]), "tables", "documents", fallback=offline)
    decision = selector.select("How many orders were placed in 2025?")
    assert parse_route(reply) is None
    assert decision.selector == "llm+offline" and "is not a route" in decision.reason
    assert decision.route == "database"  # what the offline selector says, not a silent default


def test_llm_selector_choice_is_used(db_url, business, local_embed):
    def script(prompt: str) -> str:
        if "Reply with one word" in prompt:
            return "both"
        if "one SELECT statement" in prompt:
            return "SELECT COUNT(*) AS n FROM returns"
        return "There are 162 returns; the policy allows 30 days."

    kb = make_kb(db_url, business, ScriptedLLM(script), local_embed, selector="llm")
    answer = kb.query("What is our return policy, and how many returns have we had?")
    assert answer.route == "both" and "chosen by the LLM" in answer.route_reason
    assert answer.sql == "SELECT COUNT(*) AS n FROM returns" and answer.rows == [{"n": 162}]
    # the database was asked the question without the clause that points at the documents
    sql_prompts = [p for p in kb.llm.prompts if "one SELECT statement" in p]  # the greedy one, then candidates
    assert sql_prompts and all(
        p.rstrip().endswith("Question: How many returns have we had?\nSQL:") for p in sql_prompts
    )
    assert answer.sources and answer.sources[0].path == "policies/return-policy.md"
    assert answer.text == "There are 162 returns; the policy allows 30 days."
    # one clock for the whole answer: the database side ran while the documents were retrieved
    t = answer.timings
    assert t["retrieval_ms"] > 0 and t["query_ms"] > 0 and t["generation_ms"] > 0
    assert t["total_ms"] >= max(t["retrieval_ms"], t["query_ms"], t["generation_ms"])


def test_the_both_route_lists_the_rows_its_answer_leaves_out(db_url, business, local_embed):
    """Three customers are called Karl Johansson: the answer written from the documents and the rows
    names one address, and kb lists the two others after it, streamed or not, as on the database route."""
    written = "SELECT email FROM customers WHERE name = 'Karl Johansson'"
    one_address = "Karl Johansson's email address is karl.johansson.4@example.com; the privacy policy covers it."

    def script(prompt: str) -> str:
        return written if "one SELECT statement" in prompt else one_address

    kb = make_kb(db_url, business, ScriptedLLM(script), local_embed, selector="offline")
    question = "According to the privacy policy, what is Karl Johansson's email address?"
    response = kb.as_query_engine().answer(question, route="both")
    others = [row["email"] for row in response.metadata["rows"]][1:]
    assert response.metadata["route"] == "both" and len(others) == 2
    assert str(response) == f"{one_address}\n\nAlso in the result (3 rows in all): {others[0]}; {others[1]}."
    assert response.metadata["rows_left_out"] == 2 and response.source_nodes

    streamed = kb.stream_query(question, route="both")
    assert "".join(streamed) == str(response)
    assert streamed.answer.text == str(response)

    named_all = ScriptedLLM(
        lambda p: (
            written if "one SELECT statement" in p else ", ".join(["x"] + others) + " and karl.johansson.4@example.com."
        )
    )
    kb_named = make_kb(db_url, business, named_all, local_embed, selector="offline")
    whole = kb_named.as_query_engine().answer(question, route="both")  # must not fire: every row named
    assert "Also in the result" not in str(whole) and "rows_left_out" not in whole.metadata


def test_route_decision_without_answering_and_forced_routes(db_url, business, local_embed):
    llm = ScriptedLLM(lambda p: "SELECT COUNT(*) AS n FROM orders" if "one SELECT statement" in p else "Answer.")
    kb = make_kb(db_url, business, llm, local_embed, selector="offline")
    decision = kb.route("How many orders were placed in 2025?")
    assert decision.route == "database" and "business tables" in decision.reason
    assert llm.prompts == []  # deciding asked no LLM
    forced = kb.query("Anything", route="database")
    assert forced.route == "database" and forced.route_reason == "forced by the caller" and forced.rows == [{"n": 1800}]
    sql = kb.sql("How many orders?")
    assert sql.sql == "SELECT COUNT(*) AS n FROM orders" and sql.rows == [{"n": 1800}]


def test_a_question_asking_a_field_of_a_row_it_names_goes_to_the_database(db_url, business, local_embed):
    kb = make_kb(db_url, business, ScriptedLLM([]), local_embed, selector="offline")
    asked = kb.route("What is the price of the Barista Pro?")  # nearest text: the Barista Pro's own guide
    assert asked.route == "database" and "products.price of 'Barista Pro'" in asked.reason
    assert kb.route("How do I descale the Barista Pro?").route == "documents"  # the row named, no field of it
    ruled = kb.route("According to the warranty policy, is the price of the Barista Pro refunded?")
    assert ruled.route == "both" and "a field of a row it names" in ruled.reason


def test_a_counting_question_about_the_records_of_a_row_it_names_goes_to_the_database(db_url, business, local_embed):
    kb = make_kb(db_url, business, ScriptedLLM([]), local_embed, selector="offline")
    counted = kb.route("How many Grinder Duo orders were cancelled?")  # nearest text: the Grinder Duo's guide
    assert counted.route == "database" and "orders of 'Grinder Duo'" in counted.reason
    # must not fire: no counting word; document words; a quantity of the product, no other table
    assert kb.route("Can I still return the Grinder Duo I ordered?").route == "documents"
    assert kb.route("How many orders of the Grinder Duo does the return policy allow to return?").route == "both"
    assert kb.route("How many grind settings does the Grinder Duo have?").route == "documents"


def test_a_refusal_is_an_answer_not_an_exception(db_url, business, local_embed, business_checksum):
    before = business_checksum()
    llm = ScriptedLLM(lambda p: "DELETE FROM orders" if "one SELECT statement" in p else "unused")
    kb = make_kb(db_url, business, llm, local_embed, selector="offline")
    answer = kb.query("How many orders were placed in 2025?")
    assert answer.route == "database" and answer.refused and "only SELECT" in answer.refusal_reason
    assert business_checksum() == before
    assert kb.stats()["refused"] == 1


def test_cli_sql_route_and_ask_with_forced_route(db_url, business, run_kb, admin, project_settings):
    """The database route on the default model: the SQL it shows computes the right figure."""
    env = {
        "KB_DATABASE__URL": db_url.render_as_string(hide_password=False),
        "KB_SQL__URL": business.render_as_string(hide_password=False),
    }
    routed = run_kb("route", "How many support tickets are still open?", env=env)
    assert routed.returncode == 0 and routed.stdout.startswith("database: ")
    proc = run_kb("sql", "How many orders were placed in 2025?", "--show-sql", env=env)
    assert proc.returncode == 0, proc.stderr
    orders_2025 = admin.fetchall(
        f"SELECT COUNT(*) FROM `{project_settings.sql.database}`.orders WHERE YEAR(ordered_at) = 2025"
    )[0][0]
    shown = proc.stdout.split("SQL: ")[1].splitlines()[0]
    assert MariaDBConnection(business).fetchall(shown)[0][0] == orders_2025  # the SQL shown computes it
    assert str(orders_2025) in proc.stdout.split("SQL: ")[0]  # the answer states the figure
    assert "business database kb_business: 6 tables; every prompt shows all 6; read in " in proc.stdout
    checked = run_kb("config", "check", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "business database kb_business: 6 tables; every prompt shows all 6; read in " in checked.stdout
    asked = run_kb("ask", "How many orders were placed in 2025?", "--route", "database", env=env)
    assert asked.returncode == 0 and "[route: database - forced by the caller]" in asked.stdout
    assert str(orders_2025) in asked.stdout


def test_the_demo_prints_correct_answers_on_all_three_routes(run_kb, admin, project_settings, business):
    env = {"KB_VECTOR_STORE__TABLE_NAME": "demo_test_nodes", "KB_ENGINE__LOG_TABLE": "demo_test_log"}
    proc = run_kb("demo", env=env, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    db = project_settings.sql.database
    orders_2025 = admin.fetchall(f"SELECT COUNT(*) FROM `{db}`.orders WHERE YEAR(ordered_at) = 2025")[0][0]
    late = admin.fetchall(
        f"SELECT COUNT(*) FROM `{db}`.returns r JOIN `{db}`.orders o ON o.id = r.order_id "
        "WHERE DATEDIFF(r.requested_at, o.delivered_at) > 30"
    )[0][0]
    assert f"SQL prompts for {db} read into the prompt cache" in proc.stdout  # before the first question
    answers = proc.stdout.split("\nQ: ")[1:]
    assert len(answers) == 3, proc.stdout
    routes = [a.split("[route: ")[1].split(" - ")[0] for a in answers]
    assert routes == ["documents", "database", "both"], proc.stdout
    text = [a.split("\nA: ")[1].split("\n")[0] for a in answers]
    assert "30 days" in text[0] or "thirty days" in text[0].lower(), text[0]
    assert "policies/return-policy.md" in answers[0].split("Sources:")[1]
    assert str(orders_2025) in text[1], text[1]
    for answer, expected in ((answers[1], orders_2025), (answers[2], late)):
        sql = answer.split("\nSQL: ")[1].split("\n")[0]  # the SQL shown computes the figure
        assert MariaDBConnection(business).fetchall(sql)[0][0] == expected, sql
    assert str(late) in text[2], text[2]


@pytest.mark.parametrize(
    "question, asked",
    [
        (
            "How many returns were requested more than 30 days after delivery, which the return policy does not allow?",
            "How many returns were requested more than 30 days after delivery?",
        ),
        (
            "What is our return policy, and how many returns did we get in October 2026?",
            "How many returns did we get in October 2026?",
        ),
        (
            "According to the ticket escalation procedure, how many open tickets are overdue?",
            "How many open tickets are overdue?",
        ),
        (  # two questions, the first asking the documents only (no word naming them)
            "How do I descale the Barista Pro, and how many orders were placed in 2025?",
            "How many orders were placed in 2025?",
        ),
        (  # one clause with both kinds of words: kept whole
            "How many orders qualify for free shipping under the shipping policy?",
            "How many orders qualify for free shipping under the shipping policy?",
        ),
    ],
)
def test_the_database_is_asked_the_question_without_its_document_clauses(question, asked):
    from kb.engines.selectors import database_part

    assert database_part(question) == asked


@pytest.mark.parametrize("filler", [" ", " \t\n", " , ", " and "])
def test_the_question_is_split_in_linear_time_on_the_longest_question_the_service_accepts(
    filler, local_embed, project_settings
):
    """A question as long as a request body may be (serve.max_request_kb), made of one long run of
    whitespace (or of commas, or of "and"s), is split and routed in linear time: the splitting
    expressions took time quadratic in such a run (20,000 spaces: 5.5 s, so this question's 262,000
    would take about 15 minutes). The bound leaves room for a busy shared machine (about 1 s idle)."""
    import time

    from kb.engines.selectors import database_part, questions_within

    longest = project_settings.serve.max_request_kb * 1024
    question = "How many orders were placed in 2025" + filler * (longest // len(filler)) + ", and what is the policy?"
    started = time.perf_counter()
    parts = questions_within(question)
    asked = database_part(question)
    decision = small_offline_selector(local_embed).select(question)
    elapsed = time.perf_counter() - started
    assert parts and asked and decision.route in ("documents", "database", "both")
    assert elapsed < 30.0, f"{elapsed:.1f} s to split and route a {len(question):,}-character question"


def small_offline_selector(embed) -> OfflineSelector:
    return OfflineSelector(
        embed,
        ["orders table: id, customer_id, total, ordered_at", "How many orders are there?", "customers by city"],
        ["Barista Pro Descaling Guide", "What does the descaling guide say?", "How do I do this?"],
    )


@pytest.mark.parametrize(
    "question, route",
    [
        # two questions, one for each side, with no word that names the documents: both
        ("How do I descale the Barista Pro, and how many orders were placed in 2025?", "both"),
        ("How many orders were placed in 2025 and why does the machine need descaling?", "both"),
        # must not fire: one question, or two that ask the same side
        ("How many orders and customers are there in 2025?", "database"),
        ("Which city has the most customers, and how many orders did they place?", "database"),
        ("How do I descale the Barista Pro, and why does it need it?", "documents"),
        ("List the orders of 2025, ordered by total", "database"),
    ],
)
def test_a_sentence_asking_one_question_of_each_side_goes_to_both(local_embed, question, route):
    decision = small_offline_selector(local_embed).select(question)
    assert decision.route == route, decision.reason
    if route == "both":
        assert "its questions ask different sides" in decision.reason


@pytest.mark.parametrize(
    "question, counts",
    [
        ("What does error E3 mean on the espresso machine?", False),  # "mean" the verb
        ("What does this setting mean for the warranty?", False),
        ("What is the mean order total?", True),  # "mean" the statistic
        ("What is the mean of the refunds?", True),
    ],
)
def test_mean_is_a_counting_cue_only_as_a_statistic(question, counts):
    from kb.engines.selectors import ANALYTIC

    assert bool(ANALYTIC.search(question)) is counts
