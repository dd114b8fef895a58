"""Cost per answer: known token counts and configured prices give the cost in the log and in `kb stats`."""

from __future__ import annotations

import pytest
from scripted_llm import ScriptedLLM

from kb.config import load_settings
from kb.knowledge_base import KnowledgeBase
from kb.operations.cost import Prices

PRICES = {"llm": {"price_in_per_1k": 1.0, "price_out_per_1k": 2.0}, "embedding": {"price_per_1k": 0.5}}


def test_an_answer_costs_its_tokens_at_the_configured_prices(db_url, local_embed, tmp_path, run_kb):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "returns.md").write_text("Customers may return any item within 30 days of delivery.\n")
    url = db_url.render_as_string(hide_password=False)
    config = {"database": {"url": url}, "profiles": {"local": PRICES}}
    kb = KnowledgeBase.from_config(
        config, llm=ScriptedLLM(["Within thirty days of delivery."]), embed_model=local_embed
    )
    kb.index_directory(docs, progress=False)
    question = "How long do customers have to return an item?"
    answer = kb.query(question, route="documents")
    tokens_in, tokens_out = answer.tokens["in"], answer.tokens["out"]
    assert tokens_in > 20 and tokens_out > 3
    question_tokens = len(kb.token_counter.tokenizer(question))
    expected = (tokens_in * 1.0 + tokens_out * 2.0 + question_tokens * 0.5) / 1000
    assert answer.cost_usd == pytest.approx(expected)
    logged = kb.connection.fetchall("SELECT cost_usd FROM kb_query_log WHERE answer_id = ?", (answer.answer_id,))
    assert logged[0][0] == pytest.approx(expected)
    [model] = kb.stats()["tokens_by_model"]
    assert model["cost_usd"] == pytest.approx(expected)
    kb.close()

    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"database:\n  url: {url}\n")
    stats = run_kb("--config", str(config_file), "stats")
    assert stats.returncode == 0, stats.stderr
    assert f"cost ${expected:.6f}" in stats.stdout and "cost by day" in stats.stdout


def test_local_models_cost_nothing_and_unknown_hosted_prices_stay_unknown():
    settings = load_settings(None, environ={})
    assert Prices.of(settings.profiles["local"]) == Prices(0.0, 0.0, 0.0)
    openai = Prices.of(settings.profiles["openai"])
    assert openai.llm_cost(1000, 1000) == pytest.approx(0.00015 + 0.0006)  # gpt-4o-mini's list prices
    hosted = settings.profiles["openai"].model_copy(deep=True)
    hosted.llm.model = "a-model-kb-has-no-price-for"
    assert Prices.of(hosted).llm_cost(10, 10) is None


def test_cost_estimate_for_each_profile(run_kb):
    out = run_kb("cost", "estimate", "--docs", "data/docs", "--questions-per-day", "100")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[2:]}
    assert set(rows) >= {"local", "openai", "ollama"}
    assert rows["local"].split()[-1] == "$0" and rows["openai"].split()[-1] != "$0"
    bad = run_kb("cost", "estimate", "--docs", "no-such-folder", "--questions-per-day", "1")
    assert bad.returncode == 1 and "is not a folder" in bad.stderr
