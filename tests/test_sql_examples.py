"""Approved question/SQL pairs (kb.business_database.examples) through the public entry points: the
Python API, ``kb sql examples``, feedback, ``kb serve`` and ``kb reembed``. A real MariaDB, the real
offline embedding model; the LLM is scripted and records its prompts (the point is what kb puts in them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from scripted_llm import ScriptedLLM
from serving import ServedKB, call, scratch_database

from kb.business_database.examples import ExampleRefused
from kb.errors import KBError
from kb.knowledge_base import KnowledgeBase
from kb.service.keys import KeyStore
from kb.stores.connection import quote_identifier

RETURNS_PAIR = (
    "How many returns were requested in March 2026?",
    "SELECT COUNT(*) FROM returns WHERE requested_at BETWEEN '2026-03-01' AND '2026-03-31'",
)
CUSTOMERS_PAIR = (
    "Which country has the most customers?",
    "SELECT country FROM customers GROUP BY country ORDER BY COUNT(*) DESC LIMIT 1",
)


def writer(prompt: str) -> str:
    """A SQL prompt gets a statement, any other prompt an answer."""
    return "SELECT COUNT(*) AS n FROM returns" if "one SELECT statement" in prompt else "There are some."


def config(url: str, business, home: Path, **sql) -> dict:
    return {
        "home": str(home / "kb-home"),
        "database": {"url": url},
        "sql": {"url": business.render_as_string(hide_password=False), **sql},
        "router": {"selector": "offline"},
    }


@pytest.fixture
def kb_db(admin, admin_url):
    with scratch_database(admin, admin_url) as (_, url):
        yield url


def sql_prompts(llm: ScriptedLLM) -> list[str]:
    return [p for p in llm.prompts if "one SELECT statement" in p]


def test_a_pair_is_stored_only_when_its_sql_passes_the_guard_and_runs(kb_db, business, tmp_path):
    kb = KnowledgeBase.from_config(
        config(kb_db, business, tmp_path, tables=["orders", "returns"]), llm=ScriptedLLM(writer)
    )
    try:
        example, new = kb.add_sql_example(*RETURNS_PAIR)
        assert new and example.sql.startswith("SELECT COUNT(*) FROM returns")
        assert kb.add_sql_example(*RETURNS_PAIR) == (example, False)  # the same pair is stored once
        refusals = {
            "DELETE FROM returns": "not stored: ",
            "SELECT nope FROM returns": "the database cannot run it: Unknown column 'nope'",
            "SELECT COUNT(*) FROM customers": "customers",  # outside sql.tables
        }
        for sql, reason in refusals.items():
            with pytest.raises(ExampleRefused, match=reason.replace("(", r"\(").replace("*", r"\*")):
                kb.add_sql_example("A question", sql)
        with pytest.raises(ExampleRefused, match="the question is empty"):
            kb.add_sql_example("   ", "SELECT 1 FROM returns")
        assert [e.id for e in kb.list_sql_examples()] == [example.id]  # nothing of the refused pairs
    finally:
        kb.close()


def test_the_closest_pairs_are_shown_after_the_schema_and_listed_in_the_answer(kb_db, business, tmp_path):
    llm = ScriptedLLM(writer)
    kb = KnowledgeBase.from_config(config(kb_db, business, tmp_path), llm=llm)
    try:
        returns, _ = kb.add_sql_example(*RETURNS_PAIR)
        customers, _ = kb.add_sql_example(*CUSTOMERS_PAIR)
        answer = kb.sql("How many returns were requested in April 2026?")
        prompt = sql_prompts(llm)[0]
        assert "Examples of good SQL for these tables:\nQuestion: " + RETURNS_PAIR[0] in prompt
        # after the schema and the rules (their prompt state is shared), right before the question
        assert prompt.index("CREATE TABLE") < prompt.index("Rules:") < prompt.index(RETURNS_PAIR[0])
        assert prompt.index(RETURNS_PAIR[0]) < prompt.index("Question: How many returns were requested in April")
        assert CUSTOMERS_PAIR[0] not in prompt  # below sql.examples_min_similarity
        assert [e["id"] for e in answer.sql_examples] == [returns.id]
        assert answer.sql_examples[0]["score"] > 0.4
        # a question no pair is close to: the prompt is as without examples
        llm.prompts.clear()
        answer = kb.sql("What is the average unit price of products?")
        assert "Examples of good SQL" not in sql_prompts(llm)[0] and answer.sql_examples == []
        assert customers.id in {e.id for e in kb.list_sql_examples()}
    finally:
        kb.close()


def test_with_examples_when_doubt_only_a_question_in_doubt_shows_the_pairs(kb_db, business, tmp_path):
    """sql.examples_when: doubt. The greedy statement's prompt is the same with or without pairs; the
    correction of a statement the server rejected shows them, and the answer lists them."""
    replies = iter(["SELECT COUNT(*) FROM returns WHERE requested_on >= '2026-04-01'"])

    def first_wrong(prompt: str) -> str:
        if "one SELECT statement" in prompt:
            return next(replies, "SELECT COUNT(*) AS n FROM returns WHERE MONTH(requested_at) = 4")
        return "There are some."

    llm = ScriptedLLM(first_wrong)
    kb = KnowledgeBase.from_config(config(kb_db, business, tmp_path, examples_when="doubt"), llm=llm)
    try:
        returns, _ = kb.add_sql_example(*RETURNS_PAIR)
        answer = kb.sql("How many returns were requested in April 2026?")
        greedy, correction = sql_prompts(llm)[:2]
        assert RETURNS_PAIR[0] not in greedy and "Examples of good SQL" not in greedy
        assert "Unknown column 'requested_on'" in correction and RETURNS_PAIR[1] in correction
        assert [e["id"] for e in answer.sql_examples] == [returns.id]
        # a question whose greedy statement answers alone lists none: no prompt showed them
        clean = kb.sql("How many returns were requested in March 2026, roughly?")
        assert clean.sql_examples == [] and len(clean.attempts) == 1
    finally:
        kb.close()


def test_ratings_teach_kb_as_learn_from_feedback_says(kb_db, business, tmp_path):
    kb = KnowledgeBase.from_config(config(kb_db, business, tmp_path), llm=ScriptedLLM(writer))
    try:
        answer = kb.sql("How many returns are there?")
        kb.rate(answer.answer_id, "positive")
        offered = kb.learn_from_rating(answer.answer_id, "positive")  # sql.learn_from_feedback: approve
        assert offered == f"to teach kb this statement: kb sql examples add --from-answer {answer.answer_id}"
        assert kb.list_sql_examples() == []
        example, new = kb.sql_example_from_answer(answer.answer_id)
        assert new and (example.question, example.sql, example.source) == (
            "How many returns are there?",
            "SELECT COUNT(*) AS n FROM returns",
            "answer",
        )
        wrong = kb.sql("How many returns were refunded?")
        corrected = "SELECT COUNT(*) FROM returns WHERE refund_amount > 0"
        taught = kb.learn_from_rating(wrong.answer_id, "negative", sql=corrected)
        assert taught and taught.startswith("added: example ")
        assert {(e.question, e.sql, e.source) for e in kb.list_sql_examples()} >= {
            ("How many returns were refunded?", corrected, "feedback")
        }
    finally:
        kb.close()
    auto = KnowledgeBase.from_config(
        config(kb_db, business, tmp_path, learn_from_feedback="auto"), llm=ScriptedLLM(writer)
    )
    try:
        answer = auto.sql("How many returns exist?")
        assert auto.learn_from_rating(answer.answer_id, "positive", may_add=False).startswith("to teach kb")
        assert "How many returns exist?" not in {e.question for e in auto.list_sql_examples()}
        assert auto.learn_from_rating(answer.answer_id, "positive").startswith("added: example ")
        assert "How many returns exist?" in {e.question for e in auto.list_sql_examples()}
        assert auto.learn_from_rating(answer.answer_id, "neutral") is None
    finally:
        auto.close()


def test_the_examples_file_is_imported_once_and_a_bad_pair_in_it_is_a_clear_error(kb_db, business, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump([{"q": RETURNS_PAIR[0], "sql": RETURNS_PAIR[1]}]))
    for _ in range(2):  # a second start finds the pair there already
        kb = KnowledgeBase.from_config(config(kb_db, business, tmp_path, examples=str(good)), llm=ScriptedLLM(writer))
        try:
            kb.sql("How many returns were requested in April 2026?")
            assert [(e.question, e.source) for e in kb.list_sql_examples()] == [(RETURNS_PAIR[0], "file")]
        finally:
            kb.close()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump([{"q": "Wipe", "sql": "DELETE FROM orders"}]))
    kb = KnowledgeBase.from_config(config(kb_db, business, tmp_path, examples=str(bad)), llm=ScriptedLLM(writer))
    try:
        with pytest.raises(KBError, match=r"sql.examples \(.*bad.yaml\): the pair for 'Wipe' is not stored: "):
            kb.sql("How many orders are there?")
    finally:
        kb.close()


def test_check_lists_the_pairs_a_schema_change_broke(admin, admin_url, kb_db, tmp_path):
    with scratch_database(admin, admin_url) as (shop, shop_url):
        table = f"{quote_identifier(shop)}.widgets"
        admin.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(40), colour VARCHAR(20))")
        admin.execute(f"INSERT INTO {table} VALUES (1, 'bolt', 'red'), (2, 'nut', 'blue')")
        settings = {
            "home": str(tmp_path),
            "database": {"url": kb_db},
            "sql": {"url": shop_url, "database": shop},
            "router": {"selector": "offline"},
        }
        kb = KnowledgeBase.from_config(settings, llm=ScriptedLLM(writer))
        try:
            colour, _ = kb.add_sql_example("Which widgets are red?", "SELECT name FROM widgets WHERE colour = 'red'")
            kb.add_sql_example("How many widgets are there?", "SELECT COUNT(*) FROM widgets")
            assert kb.check_sql_examples() == []
            admin.execute(f"ALTER TABLE {table} DROP COLUMN colour")
            failing = kb.check_sql_examples()
            assert [(e.id, "Unknown column 'colour'" in why) for e, why in failing] == [(colour.id, True)]
        finally:
            kb.close()


def test_the_cli_imports_lists_exports_checks_and_removes_pairs(run_kb, kb_db, business, tmp_path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config(kb_db, business, tmp_path / "home")))
    pairs = tmp_path / "pairs.yaml"
    pairs.write_text(
        yaml.safe_dump(
            [{"q": q, "sql": s} for q, s in (RETURNS_PAIR, CUSTOMERS_PAIR)]
            + [{"q": "Wipe", "sql": "DELETE FROM orders"}]
        )
    )
    kb = ("--config", str(config_file), "sql", "examples")
    imported = run_kb(*kb, "import", str(pairs))
    assert imported.returncode == 1, imported.stderr  # one pair refused: said, and the status says so
    assert "2 added, 0 already approved, 1 refused" in imported.stdout and "refused: Wipe: " in imported.stdout
    refused = run_kb(*kb, "add", "Bad", "SELECT nope FROM orders")
    assert refused.returncode == 1 and "Unknown column 'nope'" in refused.stderr and "Traceback" not in refused.stderr
    listed = run_kb(*kb, "list")
    assert listed.returncode == 0 and listed.stdout.count("  question: ") == 2
    exported = run_kb(*kb, "export")
    assert [item["q"] for item in yaml.safe_load(exported.stdout)] == [RETURNS_PAIR[0], CUSTOMERS_PAIR[0]]
    assert run_kb(*kb, "check").stdout.startswith("2 of 2 approved examples run")
    first_id = listed.stdout.split()[0]
    assert run_kb(*kb, "remove", first_id).returncode == 0
    missing = run_kb(*kb, "remove", first_id)
    assert missing.returncode == 1 and "no approved example" in missing.stderr
    assert run_kb(*kb, "list").stdout.count("  question: ") == 1
    # a thumbs-down with the right statement teaches it; --sql on a thumbs-up is a mistake, said so
    with KnowledgeBase.from_config(str(config_file), llm=ScriptedLLM(writer)) as asker:
        answer_id = asker.sql("How many returns were refunded?").answer_id
    right = "SELECT COUNT(*) FROM returns WHERE refund_amount > 0"
    misused = run_kb("--config", str(config_file), "feedback", "rate", answer_id, "positive", "--sql", right)
    assert misused.returncode == 1 and "rate the answer negative" in misused.stderr
    rated = run_kb("--config", str(config_file), "feedback", "rate", answer_id, "negative", "--sql", right)
    assert rated.returncode == 0 and "added: example " in rated.stdout, rated.stderr
    assert "How many returns were refunded?" in run_kb(*kb, "list").stdout


def test_reembed_carries_the_pairs_to_the_new_model(kb_db, business, tmp_path):
    from standins import openai_embeddings, serve

    with serve(openai_embeddings) as (api_base, _):
        settings = config(kb_db, business, tmp_path)
        settings["profiles"] = {
            "wordhash": {
                "llm": {"provider": "openai_like", "model": "unused", "api_base": f"{api_base}/v1"},
                "embedding": {"provider": "openai_like", "model": "wordhash-embed", "api_base": f"{api_base}/v1"},
            }
        }
        kb = KnowledgeBase.from_config(settings, llm=ScriptedLLM(writer))
        try:
            (tmp_path / "docs").mkdir()
            (tmp_path / "docs" / "note.md").write_text("# Note\n\nReturns are accepted for 30 days.\n")
            kb.index_directory(tmp_path / "docs", progress=False)
            returns, _ = kb.add_sql_example(*RETURNS_PAIR)
            kb.add_sql_example(*CUSTOMERS_PAIR)
            before = kb.sql_examples.store.table_name
            kb.reembed("wordhash")
            after = kb.sql_examples
            assert after.store.table_name != before and after.store.embed_model_name == "openai_like:wordhash-embed"
            assert [e.question for e in kb.list_sql_examples()] == [RETURNS_PAIR[0], CUSTOMERS_PAIR[0]]
            closest = after.closest("kb_business", RETURNS_PAIR[0], 1, -1.0)
            assert [e.id for e in closest] == [returns.id]  # found by the new model's vector of its question
            assert before in kb.drop_old_generations()
        finally:
            kb.close()


@pytest.fixture(scope="module")
def site(admin, admin_url, business, tmp_path_factory):
    with scratch_database(admin, admin_url) as (_, url):
        work = tmp_path_factory.mktemp("examples")
        settings = config(url, business, work / "kbhome", learn_from_feedback="auto")
        kb = KnowledgeBase.from_config(settings)
        keys = KeyStore(kb.connection)
        made = {
            name: keys.create(name, requests_per_minute=100000, **options)[1]
            for name, options in {
                "analyst": {"collections": ["*"], "sql": True},
                "admin": {"collections": ["*"], "scope": "admin", "sql": True},
            }.items()
        }
        kb.close()
        server = ServedKB(settings, work).wait_ready()
        try:
            yield {"server": server, "keys": made}
        finally:
            server.stop()


def test_over_http_only_admin_keys_change_the_pairs_and_thumbs_teach(site):
    pair = {"question": RETURNS_PAIR[0], "sql": RETURNS_PAIR[1]}
    assert call(site, "POST", "/v1/sql/examples", "analyst", json=pair).status_code == 403
    assert call(site, "GET", "/v1/sql/examples", "analyst").status_code == 403
    added = call(site, "POST", "/v1/sql/examples", "admin", json=pair)
    assert added.status_code == 201 and added.json()["added"] is True
    example_id = added.json()["example"]["id"]
    assert call(site, "POST", "/v1/sql/examples", "admin", json=pair).status_code == 200  # already there
    refused = call(site, "POST", "/v1/sql/examples", "admin", json={"question": "Wipe", "sql": "DROP TABLE orders"})
    assert refused.status_code == 422 and "not stored" in refused.json()["error"]["message"]
    assert call(site, "DELETE", f"/v1/sql/examples/{example_id}", "analyst").status_code == 403
    # a read key's thumbs-up offers its answer's pair; an admin's adds it (sql.learn_from_feedback: auto)
    asked = call(site, "POST", "/v1/sql", "analyst", json={"question": "How many orders are there?"}).json()
    offered = call(
        site, "POST", "/v1/feedback", "analyst", json={"answer_id": asked["answer_id"], "rating": "positive"}
    )
    assert offered.status_code == 200 and offered.json()["taught"].startswith("to teach kb")
    questions = {e["question"] for e in call(site, "GET", "/v1/sql/examples", "admin").json()["examples"]}
    assert "How many orders are there?" not in questions
    corrected = call(
        site,
        "POST",
        "/v1/feedback",
        "analyst",
        json={"answer_id": asked["answer_id"], "rating": "negative", "sql": "SELECT 1 FROM orders"},
    )
    assert corrected.status_code == 403
    mine = call(site, "POST", "/v1/sql", "admin", json={"question": "How many orders were placed?"}).json()
    taught = call(site, "POST", "/v1/feedback", "admin", json={"answer_id": mine["answer_id"], "rating": "positive"})
    assert taught.json()["taught"].startswith("added: example ")
    listed = call(site, "GET", "/v1/sql/examples", "admin").json()["examples"]
    assert {"How many orders were placed?", RETURNS_PAIR[0]} <= {e["question"] for e in listed}
    assert call(site, "POST", "/v1/sql/examples/check", "admin").json() == {"failing": []}
    assert call(site, "DELETE", f"/v1/sql/examples/{example_id}", "admin").status_code == 204
    assert call(site, "DELETE", f"/v1/sql/examples/{example_id}", "admin").status_code == 404
    imported = call(
        site,
        "POST",
        "/v1/sql/examples/import",
        "admin",
        json={"pairs": [{"q": CUSTOMERS_PAIR[0], "sql": CUSTOMERS_PAIR[1]}]},
    )
    assert imported.json()["added"] == 1
    # the answer lists the pair the prompt showed
    answer = call(site, "POST", "/v1/sql", "analyst", json={"question": "Which country has the most customers?"}).json()
    assert [e["question"] for e in answer["sql_examples"]] == [CUSTOMERS_PAIR[0]]
    assert json.dumps(answer).count("sql_examples") == 1


def test_a_pairs_statement_copied_for_another_question_is_put_to_candidates_written_without_pairs(
    kb_db, business, tmp_path
):
    """The model copies the March pair's statement for a question about April. A statement that is a
    shown pair's, for a question that is not that pair's, is in doubt: candidates written without the
    pairs vote, and their rows win. Must not fire: asked the pair's own question, the copy answers
    alone; candidates that agree with the copy leave it standing."""
    april = "SELECT COUNT(*) FROM returns WHERE requested_at >= '2026-04-01' AND requested_at < '2026-05-01'"

    def copier(without_pairs: str):
        def write(prompt: str) -> str:
            if "one SELECT statement" not in prompt:
                return "There are some."
            return RETURNS_PAIR[1] if "Examples of good SQL" in prompt else without_pairs

        return write

    llm = ScriptedLLM(copier(april))
    kb = KnowledgeBase.from_config(config(kb_db, business, tmp_path), llm=llm)
    try:
        kb.add_sql_example(*RETURNS_PAIR)
        answer = kb.sql("How many returns were requested in April 2026?")
        prompts = sql_prompts(llm)
        assert "Examples of good SQL" in prompts[0] and len(prompts) == 3
        assert all("Examples of good SQL" not in p for p in prompts[1:])
        assert answer.sql == april and answer.attempts[0].error.startswith("outvoted")

        llm.prompts.clear()
        own = kb.sql(RETURNS_PAIR[0])  # the pair's own question: its statement is the answer
        assert len(sql_prompts(llm)) == 1 and own.sql == kb.list_sql_examples()[0].sql

        agreeing = ScriptedLLM(copier(RETURNS_PAIR[1]))
        kb.close()
        kb = KnowledgeBase.from_config(config(kb_db, business, tmp_path), llm=agreeing)
        same = kb.sql("How many returns were requested in March of 2026?")
        assert len(sql_prompts(agreeing)) >= 2 and same.sql.startswith(
            "SELECT COUNT(*) FROM returns WHERE requested_at"
        )
        assert not same.attempts[0].error
    finally:
        kb.close()
