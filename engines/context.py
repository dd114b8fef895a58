"""Which retrieved chunks go into the answer prompt.

On a CPU, reading the prompt is most of an answer's time: a 1.5B model on two cores reads a few
hundred tokens a second, so five 256-token chunks cost seconds before the first word. The model is
given only what it needs, in retrieval order:

* chunks until ``max_tokens`` of chunk text is reached (the first chunk always, even alone over it);
* none scoring below ``min_relative_score`` times the best chunk's score (a chunk far below the best
  is rarely the answer and always costs its tokens);
* no chunk that repeats one already given (``duplicate_overlap`` of its word shingles are in it:
  overlapping windows of one document, the same paragraph in two documents).

Every retrieved chunk stays a source of the response (the user sees all of them); those that were
not in the prompt are marked ``in_prompt: False`` in the response's metadata, so a reader can tell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llama_index.core.schema import MetadataMode, NodeWithScore

_WORD = re.compile(r"\w+")


def _shingles(text: str, size: int = 5) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


@dataclass(frozen=True)
class ContextBudget:
    max_tokens: int = 512
    min_relative_score: float = 0.0
    duplicate_overlap: float = 0.8

    def choose(self, nodes: Sequence[NodeWithScore], count_tokens: Callable[[str], int]) -> list[NodeWithScore]:
        """The chunks of ``nodes`` (retrieval order) that go into the prompt."""
        chosen: list[NodeWithScore] = []
        seen: list[set[tuple[str, ...]]] = []
        used = 0
        best = max((n.score for n in nodes if n.score is not None), default=None)
        for hit in nodes:
            below = (
                best is not None and best > 0 and hit.score is not None and hit.score < self.min_relative_score * best
            )
            if chosen and below:
                continue
            text = hit.node.get_content(metadata_mode=MetadataMode.LLM)
            shingles = _shingles(text)
            if any(len(shingles & earlier) >= self.duplicate_overlap * len(shingles) for earlier in seen):
                continue
            tokens = count_tokens(text)
            if chosen and used + tokens > self.max_tokens:
                continue  # a shorter chunk further down may still fit
            chosen.append(hit)
            seen.append(shingles)
            used += tokens
        return chosen


def token_counter(llm: object) -> Callable[[str], int]:
    """Tokens of a text as ``llm`` counts them (its own tokenizer when it has one, else LlamaIndex's)."""
    tokenize = getattr(llm, "tokenize", None)
    if callable(tokenize):
        return lambda text: len(tokenize(text))
    from llama_index.core.utils import get_tokenizer

    tokenizer = get_tokenizer()
    return lambda text: len(tokenizer(text))
