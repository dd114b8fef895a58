"""The back ends named beside OpenAI and Ollama, each chosen by configuration alone: Anthropic Claude
with Voyage embeddings (profile ``claude``) against a stand-in speaking both APIs on loopback, and a
Hugging Face Transformers model run in this process (profile ``transformers``), here a tiny model
with random weights written to a folder, since nothing can be downloaded. Real MariaDB throughout."""

from __future__ import annotations

import json

import pytest
from standins import anthropic_messages, serve

from kb.errors import ConfigError
from kb.knowledge_base import KnowledgeBase
from kb.operations.cost import Prices

POLICY = "# Returns\n\nProducts can be returned within 30 days of delivery, with the receipt.\n"
HOURS = "# Hours\n\nThe shop opens at nine o'clock on weekdays and at ten on Saturdays.\n"


def write_docs(folder):
    folder.mkdir()
    (folder / "returns.md").write_text(POLICY)
    (folder / "hours.md").write_text(HOURS)
    return folder


@pytest.fixture
def voyage_tokenizer_in_hub_cache(tmp_path, monkeypatch):
    """LlamaIndex's Voyage integration sizes its batches with the model's tokenizer from the Hugging
    Face Hub (voyageai/voyage-3.5), which this machine cannot reach: a word-level tokenizer is put
    where the Hub's cache would keep it, and the Hub client is told to stay offline."""
    from huggingface_hub import constants
    from tokenizers import Tokenizer, models, pre_tokenizers

    cache = tmp_path / "hub"
    snapshot = cache / "models--voyageai--voyage-3.5" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (cache / "models--voyageai--voyage-3.5" / "refs").mkdir()
    (cache / "models--voyageai--voyage-3.5" / "refs" / "main").write_text("0" * 40)
    tokenizer = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(snapshot / "tokenizer.json"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_claude_with_voyage_embeddings_answers_from_the_documents(db_url, tmp_path, voyage_tokenizer_in_hub_cache):
    def reply(prompt: str) -> str:
        return "Within 30 days of delivery." if "30 days" in prompt else "I do not know."

    with serve(anthropic_messages(reply)) as (base, standin):
        config = {
            "profile": "claude",
            "database": {"url": db_url.render_as_string(hide_password=False)},
            "sql": {"enabled": False},
            "router": {"selector": "offline"},
            "profiles": {
                "claude": {
                    "llm": {"api_base": base, "api_key": "sk-ant-test"},
                    "embedding": {"api_base": f"{base}/v1", "api_key": "pa-test", "batch_size": 8},
                }
            },
        }
        kb = KnowledgeBase.from_config(config)
        try:
            assert type(kb.llm).__name__ == "Anthropic" and type(kb.embed_model).__name__ == "VoyageEmbedding"
            assert kb.index_directory(write_docs(tmp_path / "docs"), progress=False).chunks == 2
            answer = kb.query("How long do I have to return a product?", route="documents")
            assert answer.text == "Within 30 days of delivery."
            assert answer.sources[0].metadata["file_name"] == "returns.md"
            embedded = [b for p, b in zip(standin.paths, standin.bodies) if p.endswith("/embeddings")]
            assert {b["model"] for b in embedded} == {"voyage-3.5"}
            # Voyage embeds documents and questions differently: the input type says which
            assert [b.get("input_type") for b in embedded][-1] == "query"
            assert "document" in {b.get("input_type") for b in embedded}
            (message,) = [b for p, b in zip(standin.paths, standin.bodies) if p.endswith("/messages")]
            assert message["model"] == "claude-sonnet-4-5" and "30 days" in json.dumps(message["messages"])
            headers = [h for p, h in zip(standin.paths, standin.headers) if p.endswith("/messages")][0]
            assert headers["x-api-key"] == "sk-ant-test"
            prices = Prices.of(kb.settings.active_profile)
            assert prices.llm_in == 0.003 and prices.embedding == 0.00006
            assert answer.cost_usd is not None and answer.cost_usd > 0
        finally:
            kb.close()


def test_a_hosted_profile_without_its_key_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    kb = KnowledgeBase.from_config({"profile": "claude"})
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        kb.llm


def tiny_transformers_model(folder) -> None:
    """A 2-layer GPT-2 with random weights and a word-level tokenizer: a real Transformers model,
    built here because nothing can be downloaded; it writes tokens, not sense."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = sorted(set((POLICY + HOURS + " answer question context information query").lower().split()))
    vocab = {w: i for i, w in enumerate(["[UNK]", "[EOS]", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", eos_token="[EOS]", pad_token="[EOS]"
    )
    wrapped.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    wrapped.save_pretrained(folder)
    config = GPT2Config(vocab_size=len(vocab), n_positions=4096, n_embd=32, n_layer=2, n_head=2, eos_token_id=1)
    GPT2LMHeadModel(config).save_pretrained(folder)


def test_a_transformers_model_runs_in_process_from_a_folder(db_url, local_embed, tmp_path):
    model_dir = tmp_path / "tiny-gpt2"
    tiny_transformers_model(model_dir)
    config = {
        "profile": "transformers",
        "database": {"url": db_url.render_as_string(hide_password=False)},
        "sql": {"enabled": False},
        "profiles": {"transformers": {"llm": {"model": str(model_dir), "max_tokens": 8, "context_window": 2048}}},
    }
    kb = KnowledgeBase.from_config(config, embed_model=local_embed)
    try:
        assert type(kb.llm).__name__ == "HuggingFaceLLM"
        kb.index_directory(write_docs(tmp_path / "docs"), progress=False)
        answer = kb.query("How long do I have to return a product?", route="documents")
        assert answer.sources[0].metadata["file_name"] == "returns.md"
        assert answer.text and len(answer.text.split()) <= 8, "max_tokens bounds what the model writes"
        assert answer.tokens["in"] > 20, "the prompt carried the retrieved chunk"
        assert answer.cost_usd == 0.0, "a model on this machine costs nothing"
    finally:
        kb.close()
