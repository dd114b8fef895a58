"""Query and chat engines: scripted LLM for the logic, the real offline models end to end."""

from __future__ import annotations

import asyncio
import time

import pytest
from scripted_llm import ScriptedLLM

from kb.errors import KBError
from kb.knowledge_base import KnowledgeBase

FILES = {
    "returns.md": "---\ntitle: Return policy\n---\nCustomers may return any item within 30 days of delivery.\n",
    "espresso.md": "---\ntitle: Espresso care\n---\nDescale the Barista Pro espresso machine every two months.\n",
    "shipping.txt": "Orders ship from the Tampere warehouse within two business days.\n",
}


@pytest.fixture
def docs(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text)
    return root


def make_kb(db_url, llm, embed, **engine):
    config = {
        "database": {"url": db_url.render_as_string(hide_password=False)},
        "retrieval": {"top_k": 2},
        "engine": engine,
    }
    return KnowledgeBase.from_config(config, llm=llm, embed_model=embed)


def test_query_cites_sources_and_prompts_with_the_chunks(db_url, local_embed, docs):
    llm = ScriptedLLM(["Within 30 days."])
    kb = make_kb(db_url, llm, local_embed)
    kb.index_directory(docs)
    answer = kb.query("How long do customers have to return an item?")
    assert answer.text == "Within 30 days."
    first = answer.sources[0]
    assert first.path == "returns.md" and first.title == "Return policy"
    assert "30 days of delivery" in first.text and first.score is not None
    assert "30 days of delivery" in llm.prompts[0] and "How long do customers have to return an item?" in llm.prompts[0]
    assert "content_hash" not in llm.prompts[0]  # bookkeeping metadata is kept out of the prompt
    assert answer.timings["retrieval_ms"] > 0 and answer.timings["total_ms"] >= answer.timings["generation_ms"]
    assert answer.tokens["in"] > 0 and answer.tokens["out"] > 0


def test_a_model_error_is_reported_not_turned_into_an_empty_answer(db_url, local_embed, docs):
    # LlamaIndex's refine synthesizer catches a ValueError from the LLM and answers "Empty Response"
    def fail(prompt: str) -> str:
        if "Answer the question using only the context" in prompt:
            raise ValueError("Requested tokens (5000) exceed context window of 4096")
        return "documents"

    kb = make_kb(db_url, ScriptedLLM(fail), local_embed)
    kb.index_directory(docs)
    with pytest.raises(KBError, match="exceed context window of 4096"):
        kb.query("How long do customers have to return an item?", route="documents")
    with pytest.raises(KBError, match="exceed context window"):
        asyncio.run(kb.aquery("How long do customers have to return an item?", route="documents"))
    # where the model does answer, nothing changes
    fine = make_kb(db_url, ScriptedLLM(lambda prompt: "Within 30 days."), local_embed)
    assert fine.query("How long do customers have to return an item?", route="documents").text == "Within 30 days."


def test_the_prompt_gets_the_chunks_the_budget_chooses_and_the_sources_stay_the_retrieved_ones(
    db_url, local_embed, docs
):
    (docs / "returns-again.md").write_text(FILES["returns.md"].replace("title: Return policy", "title: Copy"))
    llm = ScriptedLLM(lambda prompt: "Answer.")
    kb = make_kb(db_url, llm, local_embed, context_tokens=40)  # room for about one chunk
    kb.index_directory(docs)
    answer = kb.query("How long do customers have to return an item?", top_k=4)
    retrieved = kb.retrieve("How long do customers have to return an item?", top_k=4)
    assert [s.node_id for s in answer.sources] == [h.node.node_id for h in retrieved]  # all of them, no more
    read = [s for s in answer.sources if s.in_prompt]
    left_out = [s for s in answer.sources if s.in_prompt is False]
    assert len(read) == 1 and read[0].path in ("returns.md", "returns-again.md") and left_out
    prompt = llm.prompts[0]
    assert prompt.count("30 days of delivery") == 1  # the duplicate paragraph is not read twice
    for source in left_out:
        if source.text != read[0].text:  # the duplicate aside, nothing left out reached the model
            assert source.text not in prompt
    # without a budget (context_tokens: 0) every retrieved chunk is read, duplicates included
    llm = ScriptedLLM(lambda prompt: "Answer.")
    kb = make_kb(db_url, llm, local_embed, context_tokens=0)
    answer = kb.query("How long do customers have to return an item?", top_k=4)
    assert len(answer.sources) == 4 and all(s.in_prompt for s in answer.sources)
    assert llm.prompts[0].count("30 days of delivery") == 2


def test_the_chunk_given_is_widened_with_the_closest_sentences_of_its_page_and_no_other(db_url, local_embed, tmp_path):
    import numpy as np

    from kb.engines.context import split_sentences

    root = tmp_path / "pages"
    root.mkdir()
    (root / "care.md").write_text(
        "Descaling the Barista Pro. Descaling removes limescale from the boiler and the pipes of the machine. "
        "Hard water makes it necessary more often. The machine shows an orange light when it is time.\n\n"
        "Daily care. Wipe the steam wand after every use. Empty the drip tray every evening. Rinse the "
        "portafilter under warm water.\n\n"
        "The descaling agent for the Barista Pro is DS-40, one part to ten parts of water. Run the mixture "
        "through the machine twice, then once with clean water.\n"
    )
    (root / "shipping.md").write_text("Descaling agents ship from the Tampere warehouse within two business days.\n")
    question = "Which descaling agent does the Barista Pro need?"

    def ask(window_tokens: int):
        llm = ScriptedLLM(lambda prompt: "Answer.")
        config = {
            "database": {"url": db_url.render_as_string(hide_password=False)},
            "indexing": {"chunk_size": 48, "chunk_overlap": 0},
            "retrieval": {"top_k": 5},
            "engine": {"context_tokens": 20, "window_tokens": window_tokens},  # the first chunk only
        }
        kb = KnowledgeBase.from_config(config, llm=llm, embed_model=local_embed)
        kb.index_directory(root)
        return kb.query(question, route="documents"), llm.prompts[0]

    answer, prompt = ask(40)
    given = answer.sources[0]
    lenders = [s for s in answer.sources[1:] if s.path == given.path]
    others = [s for s in answer.sources if s.path != given.path]
    assert given.in_prompt and lenders and others  # the page's other chunks and another page were retrieved
    assert answer.context["excerpts"] == {given.node_id: [s.node_id for s in lenders if s.in_prompt]}
    lent = [sentence for s in lenders for sentence in split_sentences(s.text) if sentence not in given.text]
    vectors = np.asarray(local_embed.get_text_embedding_batch(lent))
    closest = lent[int(np.argmax(vectors @ np.asarray(local_embed.get_query_embedding(question))))]
    assert given.text in prompt and "..." in prompt and closest in prompt, prompt  # the nearest sentence is read
    for other in others:
        assert other.text not in prompt and not other.in_prompt  # another page lends nothing
    # with no window (engine.window_tokens: 0) only the chunk given is read
    answer, prompt = ask(0)
    assert answer.context["excerpts"] == {} and closest not in prompt
    assert [s.in_prompt for s in answer.sources] == [True] + [False] * (len(answer.sources) - 1)


def test_a_routed_question_is_embedded_once(db_url, local_embed, docs, business):
    from llama_index.core.base.embeddings.base import BaseEmbedding

    class Counting(BaseEmbedding):
        calls: int = 0

        def _get_query_embedding(self, query: str) -> list[float]:
            self.calls += 1
            return local_embed.get_query_embedding(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return local_embed.get_text_embedding(text)

    counting = Counting(model_name="counting")
    config = {
        "database": {"url": db_url.render_as_string(hide_password=False)},
        "sql": {"url": business.render_as_string(hide_password=False)},
        "router": {"selector": "offline"},
    }
    kb = KnowledgeBase.from_config(config, llm=ScriptedLLM(lambda prompt: "Answer."), embed_model=counting)
    kb.index_directory(docs)
    kb.warm_up()
    for question, route in (
        ("How often should the Barista Pro be descaled?", "documents"),
        ("What does the return policy say, and how many returns were there in 2025?", "both"),
    ):
        before = counting.calls
        answer = kb.query(question)
        assert answer.route == route and counting.calls - before == 1, (route, counting.calls - before)
    # kb's documents engine alone, as a LlamaIndex query engine: its retriever's embedding is reused too
    before = counting.calls
    response = kb.documents_engine().query("How often should the Barista Pro be descaled?")
    assert response.source_nodes and counting.calls - before == 1


def test_nothing_retrieved_does_not_call_the_llm(db_url, local_embed):
    llm = ScriptedLLM([])
    kb = make_kb(db_url, llm, local_embed)
    kb.vector_store  # empty store
    answer = kb.query("Anything at all?", mode="text")
    assert answer.sources == [] and "found nothing" in answer.text and llm.prompts == []


def test_chat_condenses_follow_ups_and_resumes_in_a_new_instance(db_url, local_embed, docs):
    def script(prompt: str) -> str:
        if "Standalone question" in prompt:
            assert "How long do customers have to return an item?" in prompt  # the history is there
            return "How often should the Barista Pro espresso machine be descaled?"
        return "Answer from context."

    kb = make_kb(db_url, ScriptedLLM(script), local_embed)
    kb.index_directory(docs)
    first = kb.chat("alice", "How long do customers have to return an item?")
    assert first.condensed_question == first.question  # nothing to condense on the first turn
    assert first.sources[0].path == "returns.md"
    # a new process would build a new KnowledgeBase: the history comes back from MariaDB
    resumed = make_kb(db_url, ScriptedLLM(script), local_embed)
    second = resumed.chat("alice", "And what about the machine?")
    assert second.condensed_question == "How often should the Barista Pro espresso machine be descaled?"
    assert second.sources[0].path == "espresso.md"  # retrieval used the standalone question
    messages = resumed.session_messages("alice")
    assert [m.role.value for m in messages] == ["user", "assistant", "user", "assistant"]
    assert "[sources: returns.md" in messages[1].content
    turns = resumed.session_turns("alice")
    assert [t["condensed_question"] for t in turns][1] == second.condensed_question
    assert resumed.sessions()[0]["session"] == "alice"
    assert resumed.delete_session("alice") and resumed.sessions() == []


def test_memory_is_bounded_by_tokens(db_url, local_embed, docs):
    seen = []

    def script(prompt: str) -> str:
        if "Standalone question" in prompt:
            seen.append(prompt)
            return "What is the return policy?"
        return "Fine."

    kb = make_kb(db_url, ScriptedLLM(script), local_embed, memory_tokens=120)
    kb.index_directory(docs)
    for i in range(8):
        kb.chat("bob", f"Question number {i} about returns and shipping times?")
    assert "Question number 6" in seen[-1]
    assert "Question number 0" not in seen[-1]  # the oldest turns fell out of the window
    assert len(kb.session_messages("bob")) == 16  # but nothing is lost from the store


def test_streaming_delivers_chunks_before_the_end(db_url, local_embed, docs):
    llm = ScriptedLLM(["Customers may return items within thirty days of the delivery date."], token_delay=0.05)
    kb = make_kb(db_url, llm, local_embed)
    kb.index_directory(docs)
    streaming = kb.stream_query("How long do customers have to return an item?")
    assert streaming.sources[0].path == "returns.md"  # known before the first token
    arrivals = []
    for chunk in streaming:
        arrivals.append((time.perf_counter(), chunk))
    assert len(arrivals) >= 5
    assert arrivals[-1][0] - arrivals[0][0] > 0.2  # the first chunk came well before the last
    assert streaming.answer.text == "Customers may return items within thirty days of the delivery date."
    assert kb.stats()["by_kind_route"] == [{"kind": "query", "route": "documents", "count": 1}]


def test_stream_chat_and_async(db_url, local_embed, docs):
    kb = make_kb(db_url, ScriptedLLM(lambda p: "Standalone?" if "Standalone question" in p else "ok then"), local_embed)
    kb.index_directory(docs)
    assert "".join(kb.stream_chat("s", "Where do orders ship from?")) == "ok then"
    assert len(kb.session_messages("s")) == 2

    import asyncio

    answer = asyncio.run(kb.aquery("Where do orders ship from?"))
    assert answer.sources[0].path == "shipping.txt"
    assert asyncio.run(kb.achat("s", "anything else?")).text == "ok then"


def test_stats_on_a_known_log(db_url, local_embed, run_kb):
    from kb.engines.answer import Answer

    kb = make_kb(db_url, ScriptedLLM([]), local_embed)
    for i in range(1, 101):
        kb.query_log.record(
            Answer(
                question=f"q{i}",
                text="a",
                timings={"total_ms": float(i), "retrieval_ms": 1.0, "generation_ms": float(i) - 1},
                tokens={"in": 10, "out": 2},
                route="documents",
                session_id="s" if i % 2 else None,
            ),
            kind="chat" if i % 2 else "query",
            llm_model="m1" if i <= 60 else "m2",
            embed_model="e",
        )
    stats = kb.stats()
    assert stats["total"] == 100 and stats["sessions"] == 1
    assert stats["latency_ms"]["total_ms"]["p50"] == pytest.approx(50.5)
    assert stats["latency_ms"]["total_ms"]["p95"] == pytest.approx(95.05)
    assert stats["tokens_by_model"] == [
        {"model": "m1", "calls": 60, "in": 600, "out": 120, "cost_usd": None},  # no price known: not logged
        {"model": "m2", "calls": 40, "in": 400, "out": 80, "cost_usd": None},
    ]
    kb.query_log.record(
        Answer(
            question="from the documents, with a budget",
            text="a",
            timings={"total_ms": 2000.0},
            route="documents",
            context={"retrieved": 5, "in_prompt": ["n1", "n2"], "tokens": 300},
        ),
        kind="query",
        llm_model="m1",
        embed_model="e",
    )
    by_route = {row["route"]: row for row in kb.stats()["by_route"]}
    assert by_route["documents"]["count"] == 101
    assert by_route["documents"]["mean_context_chunks"] == 2 and by_route["documents"]["mean_context_tokens"] == 300
    proc = run_kb("stats", env={"KB_DATABASE__URL": db_url.render_as_string(hide_password=False)})
    assert proc.returncode == 0, proc.stderr
    assert "101 questions (1 chat sessions, 0 refused)" in proc.stdout
    assert "m1: 61 calls, 600 in, 120 out" in proc.stdout
    assert "  documents         101" in proc.stdout and proc.stdout.rstrip().count("300") >= 1


def test_a_query_log_made_by_an_older_kb_gets_the_new_columns(db):
    from kb.engines.answer import Answer
    from kb.operations.query_log import QueryLog

    db.execute(
        "CREATE TABLE old_log (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, created_at TIMESTAMP(6) "
        "NOT NULL DEFAULT CURRENT_TIMESTAMP(6), kind VARCHAR(16) NOT NULL, session_id VARCHAR(255) NULL, question "
        "MEDIUMTEXT NOT NULL, condensed_question MEDIUMTEXT NULL, route VARCHAR(16) NOT NULL, route_reason TEXT NULL, "
        "answer MEDIUMTEXT NULL, sources JSON NULL, `sql` MEDIUMTEXT NULL, refused BOOLEAN NOT NULL DEFAULT FALSE, "
        "retrieval_ms DOUBLE NULL, generation_ms DOUBLE NULL, total_ms DOUBLE NULL, best_score DOUBLE NULL, "
        "tokens_in INT UNSIGNED NOT NULL DEFAULT 0, tokens_out INT UNSIGNED NOT NULL DEFAULT 0, llm_model VARCHAR(255) "
        "NULL, embed_model VARCHAR(255) NULL)"
    )
    db.execute("INSERT INTO old_log (kind, question, route) VALUES ('query', 'before', 'documents')")
    log = QueryLog(db, "old_log")
    columns = {r[0] for r in db.fetchall("SHOW COLUMNS FROM old_log")}
    assert {"context_chunks", "context_tokens", "answer_id", "asked_by", "rating", "rating_comment"} <= columns
    assert "by_answer" in {r[2] for r in db.fetchall("SHOW INDEX FROM old_log")}
    assert db.fetchall("SELECT question FROM old_log") == [("before",)]  # nothing lost
    assert log.stats()["by_route"][0]["count"] == 1
    answer = Answer(question="after", text="an answer")
    log.record(answer, kind="query", llm_model="m", embed_model="e")
    assert log.rate(answer.answer_id, "positive") and not log.rate("0" * 32, "positive")
    assert log.stats()["satisfaction_by_route"] == [
        {"route": "documents", "positive": 1, "negative": 0, "neutral": 0, "satisfaction": 1.0}
    ]


# -- the real offline models, end to end ------------------------------------------------------------


def test_the_default_model_answers_from_the_documents(db_url, docs, run_kb):
    """The documents route on the default model (Qwen2.5-Coder-1.5B): the right file, the right fact."""
    env = {"KB_DATABASE__URL": db_url.render_as_string(hide_password=False)}
    assert run_kb("index", str(docs), env=env).returncode == 0
    proc = run_kb("ask", "How often should the Barista Pro espresso machine be descaled?", env=env)
    assert proc.returncode == 0, proc.stderr
    sources = proc.stdout.split("Sources:")[1].strip().splitlines()
    assert sources[0].strip().startswith("1. espresso.md")
    answer_text = proc.stdout.split("Sources:")[0].lower()
    assert "two months" in answer_text or "2 months" in answer_text, answer_text


def test_chat_session_resumes_in_a_new_process(db_url, docs, run_kb):
    """Resuming is logic, not model quality: the fast tiny model (a `small` one: concat condensing)."""
    env = {"KB_DATABASE__URL": db_url.render_as_string(hide_password=False), "KB_PROFILE": "tiny"}
    assert run_kb("index", str(docs), env=env).returncode == 0
    first = run_kb("chat", "--session", "team", input="How long is the return window?\n", env=env)
    assert first.returncode == 0, first.stderr
    assert "you> How long is the return window?" in first.stdout and "returns.md" in first.stdout
    second = run_kb("chat", "--session", "team", input="And from which date does it count?\n", env=env)
    assert second.returncode == 0, second.stderr
    assert "Resuming session 'team' (1 earlier turns):" in second.stdout
    assert "user: How long is the return window?" in second.stdout
    shown = run_kb("sessions", "show", "team", env=env)
    assert "turn 2 [documents]" in shown.stdout
    # concat condensing for the small offline model: the follow-up carries the earlier question
    assert "(as: How long is the return window? And from which date does it count?)" in shown.stdout
    listed = run_kb("sessions", env=env)
    assert listed.stdout.startswith("team\t2 turns")
    assert run_kb("sessions", "delete", "team", env=env).returncode == 0
    missing = run_kb("sessions", "show", "team", env=env)
    assert missing.returncode != 0 and "no session named 'team'" in missing.stderr


def test_embedding_wrappers_go_around_models_already_built_and_around_each_other(db_url, local_embed, docs):
    from llama_index.core.base.embeddings.base import BaseEmbedding

    asked: list[tuple[str, str]] = []

    class Tagged(BaseEmbedding):
        inner: BaseEmbedding
        tag: str

        def _get_query_embedding(self, query: str) -> list[float]:
            asked.append((self.tag, query))
            return self.inner.get_query_embedding(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self.inner.get_text_embedding(text)

    kb = make_kb(db_url, ScriptedLLM([]), local_embed)
    kb.index_directory(docs)
    name = kb.embed_model_name
    assert kb.embed_model is local_embed  # built before any wrapper
    kb.wrap_embedding_models(lambda model, model_name: Tagged(inner=model, tag=f"cache:{model_name}"))
    kb.wrap_embedding_models(lambda model, model_name: Tagged(inner=model, tag="outer"))
    hits = kb.retrieve("How long do customers have to return an item?")
    assert hits and hits[0].node.metadata["file_path"] == "returns.md"
    question = "How long do customers have to return an item?"
    assert asked == [("outer", question), (f"cache:{name}", question)]  # outermost first, each once
    assert kb.embed_model_name == name  # the index still names the model that made its vectors
