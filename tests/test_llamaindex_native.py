"""kb's engines are LlamaIndex engines: tools, LlamaIndex's own router and evaluators take them as they are."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import Response, StreamingResponse
from llama_index.core.chat_engine.types import AgentChatResponse, BaseChatEngine
from scripted_llm import ScriptedLLM

from kb import KnowledgeBase
from kb.business_database.provisioning import DATA


def script(prompt: str) -> str:
    if "one SELECT statement" in prompt:
        return "SELECT COUNT(*) AS n FROM orders WHERE YEAR(ordered_at) = 2025"
    if "Reply with one word" in prompt:
        return "documents" if "return" in prompt.split("\n")[-1].lower() else "database"
    if "Result (" in prompt:
        return "There were 491 orders."
    if "Standalone question" in prompt:
        return prompt.split("Follow Up Input:")[1].split("\n")[0].strip()
    return "Customers may return products within 30 days of delivery."


@pytest.fixture
def kb(db_url, business, local_embed):
    config = {
        "database": {"url": db_url.render_as_string(hide_password=False)},
        "sql": {"url": business.render_as_string(hide_password=False)},
        "router": {"selector": "llm"},
        "retrieval": {"top_k": 2},
    }
    knowledge_base = KnowledgeBase.from_config(config, llm=ScriptedLLM(script), embed_model=local_embed)
    knowledge_base.index_directory(DATA / "docs", progress=False)
    yield knowledge_base
    knowledge_base.close()


def test_the_engines_are_llamaindex_engines(kb):
    engine = kb.as_query_engine()
    assert isinstance(engine, BaseQueryEngine) and isinstance(kb.as_retriever(), BaseRetriever)
    assert isinstance(kb.as_chat_engine("s1"), BaseChatEngine)
    response = engine.query("How many days do customers have to return a product?")
    assert isinstance(response, Response)
    assert response.metadata["route"] == "documents" and "chosen by the LLM" in response.metadata["route_reason"]
    assert response.source_nodes[0].node.metadata["file_path"] == "policies/return-policy.md"
    database = engine.query("How many orders were placed in 2025?")
    assert database.metadata["route"] == "database" and database.metadata["rows"] == [{"n": 491}]
    assert database.metadata["sql_query"].startswith("SELECT COUNT(*)") and str(database) == "There were 491 orders."
    streaming = kb.as_query_engine(streaming=True).query("How many days do customers have to return a product?")
    assert isinstance(streaming, StreamingResponse) and streaming.source_nodes
    assert "".join(streaming.response_gen) == "Customers may return products within 30 days of delivery."


def test_as_a_query_engine_tool_and_under_llamaindex_router(kb):
    from llama_index.core.query_engine import RouterQueryEngine
    from llama_index.core.selectors import LLMSingleSelector
    from llama_index.core.tools import QueryEngineTool

    tool = QueryEngineTool.from_defaults(
        query_engine=kb.as_query_engine(),
        name="nordbrew",
        description="Nordbrew's policies, guides and business figures",
    )
    output = tool.call("How many days do customers have to return a product?")
    assert output.raw_output.metadata["route"] == "documents" and "30 days" in output.content

    other = QueryEngineTool.from_defaults(
        query_engine=kb.documents_engine(), name="docs_only", description="documents only"
    )
    chooser = ScriptedLLM([json.dumps([{"choice": 1, "reason": "figures live in the database"}])])
    router = RouterQueryEngine(
        selector=LLMSingleSelector.from_defaults(llm=chooser), query_engine_tools=[tool, other], llm=chooser
    )
    response = router.query("How many orders were placed in 2025?")
    assert response.metadata["route"] == "database" and response.metadata["rows"] == [{"n": 491}]
    # LlamaIndex's selector chose between the two tools by their descriptions
    assert "Nordbrew's policies, guides and business figures" in chooser.prompts[0]
    assert "documents only" in chooser.prompts[0]


@pytest.mark.parametrize("verdict, passing", [("YES", True), ("NO", False)])
def test_a_llamaindex_evaluator_scores_a_kb_response(kb, verdict, passing):
    from llama_index.core.evaluation import FaithfulnessEvaluator

    response = kb.as_query_engine().query("How many days do customers have to return a product?")
    judge = ScriptedLLM(lambda prompt: verdict)
    result = FaithfulnessEvaluator(llm=judge).evaluate_response(response=response)
    assert result.passing is passing
    assert "30 days of delivery" in judge.prompts[0]  # the judge read kb's cited chunk


def test_the_chat_engine_answers_with_sources_and_route(kb):
    engine = kb.as_chat_engine("native")
    reply = engine.chat("How many days do customers have to return a product?")
    assert isinstance(reply, AgentChatResponse) and reply.source_nodes and reply.metadata["route"] == "documents"
    streamed = engine.stream_chat("And how many orders were placed in 2025?")
    assert "".join(streamed.response_gen) == "There were 491 orders."
    assert streamed.metadata["route"] == "database" and streamed.metadata["session_id"] == "native"
    assert [m.role.value for m in engine.chat_history] == ["user", "assistant", "user", "assistant"]
    engine.reset()
    assert engine.chat_history == []


@pytest.mark.parametrize("use_async", [False, True])
def test_sync_and_async_twins_agree(kb, use_async):
    question = "How many orders were placed in 2025?"

    def run(name, *args, **kwargs):
        if use_async:
            return asyncio.run(getattr(kb, f"a{name}")(*args, **kwargs))
        return getattr(kb, name)(*args, **kwargs)

    assert run("route", question).route == "database"
    assert run("query", question).rows == [{"n": 491}]
    assert run("sql", question).sql.startswith("SELECT COUNT(*)")
    assert run("retrieve", "return window", mode="text")[0].node.metadata["file_path"] == "policies/return-policy.md"
    streamed = run("stream_query", "How many days do customers have to return a product?")
    assert "".join(streamed) and streamed.answer.sources
    assert run("chat", f"twin-{use_async}", question).route == "database"
    chat_stream = run("stream_chat", f"twin-{use_async}", "How many days do customers have to return a product?")
    assert "".join(chat_stream) and chat_stream.answer.route == "documents"
    assert run("index_directory", DATA / "docs", progress=False).unchanged  # nothing changed since the fixture


def test_from_kb_import_knowledge_base_without_loading_llamaindex():
    code = (
        "import sys, kb; assert 'llama_index.core' not in sys.modules; "
        "from kb import KnowledgeBase; print(KnowledgeBase.__module__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "kb.knowledge_base"
