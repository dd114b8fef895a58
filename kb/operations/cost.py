"""What a question or an indexing run costs in money, and a month's estimate for each profile.

Prices are per 1,000 tokens, in US dollars: the LLM's input and output tokens, and the embedding
model's tokens. A profile may set them (``llm.price_in_per_1k``, ``llm.price_out_per_1k``,
``embedding.price_per_1k``); otherwise the prices the providers published for the hosted models
named below are used (list prices as of 2025; set your own where your contract differs), and
models that run on this machine (llama.cpp, local embeddings, Ollama, an OpenAI-compatible server)
cost 0. A hosted model kb has no price for costs ``None`` (unknown), never a made-up figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from kb.config import ProfileSettings, Settings

LOCAL_LLM_PROVIDERS = ("llama_cpp", "ollama", "openai_like", "transformers")
LOCAL_EMBEDDING_PROVIDERS = ("local", "huggingface")

# Published list prices, US dollars per 1,000 tokens: (input, output) for LLMs, one figure for embeddings.
PUBLISHED_LLM_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.00015, 0.0006),
    "gpt-4o": (0.0025, 0.01),
    "gpt-4.1-mini": (0.0004, 0.0016),
    "gpt-4.1": (0.002, 0.008),
    "claude-3-5-haiku-latest": (0.0008, 0.004),
    "claude-3-5-sonnet-latest": (0.003, 0.015),
    "claude-sonnet-4-5": (0.003, 0.015),
    "claude-haiku-4-5": (0.001, 0.005),
}
PUBLISHED_EMBEDDING_PRICES: dict[str, float] = {
    "text-embedding-3-small": 0.00002,
    "text-embedding-3-large": 0.00013,
    "text-embedding-ada-002": 0.0001,
    "voyage-3": 0.00006,
    "voyage-3-lite": 0.00002,
    "voyage-3.5": 0.00006,
    "voyage-3.5-lite": 0.00002,
}


@dataclass(frozen=True)
class Prices:
    """US dollars per 1,000 tokens; None where the price is unknown."""

    llm_in: Optional[float]
    llm_out: Optional[float]
    embedding: Optional[float]

    @classmethod
    def of(cls, profile: ProfileSettings) -> Prices:
        llm, embedding = profile.llm, profile.embedding
        published = PUBLISHED_LLM_PRICES.get(llm.model)
        local_llm = llm.provider in LOCAL_LLM_PROVIDERS
        llm_in = llm.price_in_per_1k
        llm_out = llm.price_out_per_1k
        if llm_in is None:
            llm_in = 0.0 if local_llm else (published[0] if published else None)
        if llm_out is None:
            llm_out = 0.0 if local_llm else (published[1] if published else None)
        embed = embedding.price_per_1k
        if embed is None:
            local_embedding = embedding.provider in LOCAL_EMBEDDING_PROVIDERS
            embed = 0.0 if local_embedding else PUBLISHED_EMBEDDING_PRICES.get(embedding.model)
        return cls(llm_in, llm_out, embed)

    def llm_cost(self, tokens_in: int, tokens_out: int) -> Optional[float]:
        if self.llm_in is None or self.llm_out is None:
            return None
        return (tokens_in * self.llm_in + tokens_out * self.llm_out) / 1000

    def embedding_cost(self, tokens: int) -> Optional[float]:
        return None if self.embedding is None else tokens * self.embedding / 1000


@dataclass
class MonthlyEstimate:
    profile: str
    document_tokens: int
    indexing: Optional[float]  # embedding every document once
    questions: Optional[float]  # a month of questions
    per_question: Optional[float]

    @property
    def total(self) -> Optional[float]:
        if self.indexing is None or self.questions is None:
            return None
        return self.indexing + self.questions


def document_tokens(folder: Path, count_tokens: Callable[[str], int]) -> tuple[int, int]:
    """Tokens of the text kb would index under ``folder`` (read as indexing reads it), and the files."""
    from kb.ingest.file_scan import UnsafePath, open_checked, scan
    from kb.ingest.readers import UnreadableFile, read

    if not folder.is_dir():
        from kb.errors import KBError

        raise KBError(f"{folder} is not a folder: give the folder of documents you would index")
    root = folder.resolve()
    files = scan(root).files
    tokens = 0
    for rel in files:
        try:
            with open_checked(root, rel) as handle:
                tokens += count_tokens(read(root / rel, handle.read()).text)
        except (UnreadableFile, UnsafePath, OSError):
            continue
    return tokens, len(files)


def estimate_month(
    settings: Settings,
    docs_tokens: int,
    questions_per_day: float,
    tokens_per_question: tuple[float, float],
    question_tokens: float = 20.0,
    days: int = 30,
) -> list[MonthlyEstimate]:
    """For every profile: embedding the documents once, and ``days`` of questions, each with
    ``tokens_per_question`` (LLM input, output) and its own embedding of ``question_tokens``."""
    estimates = []
    for name, profile in settings.profiles.items():
        prices = Prices.of(profile)
        indexing = prices.embedding_cost(docs_tokens)
        llm = prices.llm_cost(round(tokens_per_question[0]), round(tokens_per_question[1]))
        embed = prices.embedding_cost(round(question_tokens))
        per_question = None if llm is None or embed is None else llm + embed
        questions = None if per_question is None else per_question * questions_per_day * days
        estimates.append(MonthlyEstimate(name, docs_tokens, indexing, questions, per_question))
    return estimates
