"""Which retrieved chunks go into the answer prompt.

On a CPU, reading the prompt is most of an answer's time: a 1.5B model on two cores reads a few
hundred tokens a second, so five 256-token chunks cost seconds before the first word. The model is
given only what it needs, in retrieval order:

* whole chunks, in retrieval order, until the next one does not fit in ``max_tokens`` of chunk text
  (the first chunk always, even alone over it); that chunk is given in part: its sentences closest
  to the question (each with its neighbours, as below) up to the tokens left, when the question's
  embedding is known. Nothing ranked below it is given: a lower-ranked chunk that happens to be
  shorter is often a near miss (the same fact for another product), and taking it in place of the
  chunk above it gave wrong answers;
* none scoring below ``min_relative_score`` times the best chunk's score (a chunk far below the best
  is rarely the answer and always costs its tokens);
* no chunk that repeats one already given (``duplicate_overlap`` of its word shingles are in it:
  overlapping windows of one document, the same paragraph in two documents).

Then the chunks given are widened (``window_tokens``, when the question's embedding is known): a
chunk is a fixed window of its page, and the sentence that answers is often just past its edge, in
another chunk of the same page that was retrieved further down. The sentences of those chunks are
embedded and the ones closest to the question, each with the sentence before and after it, are
appended to the chunk of their page, up to ``window_tokens`` in all. Only chunks of a page already
given lend sentences: excerpts of other pages, mixed in, misled the model more often than they
helped (benchmarks/answer_quality.py, README).

Every retrieved chunk stays a source of the response (the user sees all of them); those that were
not in the prompt are marked ``in_prompt: False`` in the response's metadata, so a reader can tell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from llama_index.core.schema import MetadataMode, NodeWithScore

_WORD = re.compile(r"\w+")
_BLANK_LINE = re.compile(r"\n\s*\n")
EmbedTexts = Callable[[list[str]], list[list[float]]]


def _shingles(text: str, size: int = 5) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def split_sentences(text: str) -> list[str]:
    """A chunk's sentences (LlamaIndex's sentence tokenizer), a paragraph break also ending one."""
    from llama_index.core.node_parser.text.utils import split_by_sentence_tokenizer

    return [
        part.strip()
        for sentence in split_by_sentence_tokenizer()(text)
        for part in _BLANK_LINE.split(sentence)
        if part.strip()
    ]


def _page(hit: NodeWithScore) -> str:
    return str(hit.node.ref_doc_id or hit.node.metadata.get("file_path") or hit.node.node_id)


@dataclass
class Reading:
    """What the answer prompt holds: ``chunks`` (retrieval order; a widened chunk is a copy with the
    excerpts appended, under the same node id) and, per widened chunk's id, the ids of the retrieved
    chunks its excerpts come from."""

    chunks: list[NodeWithScore]
    excerpts: dict[str, list[str]] = field(default_factory=dict)

    def first(self, count: int) -> Reading:
        """The first ``count`` chunks and their excerpts."""
        kept = self.chunks[:count]
        ids = {hit.node.node_id for hit in kept}
        return Reading(kept, {key: lenders for key, lenders in self.excerpts.items() if key in ids})

    @property
    def node_ids(self) -> list[str]:
        """Every retrieved chunk the model read, whole or in part."""
        ids = [hit.node.node_id for hit in self.chunks]
        return ids + [lender for lenders in self.excerpts.values() for lender in lenders if lender not in ids]


@dataclass(frozen=True)
class ContextBudget:
    max_tokens: int = 512
    min_relative_score: float = 0.0
    duplicate_overlap: float = 0.8
    window_tokens: int = 0
    embed_texts: Optional[EmbedTexts] = None  # the embedding model of the question's generation

    def choose(self, nodes: Sequence[NodeWithScore], count_tokens: Callable[[str], int]) -> list[NodeWithScore]:
        """The chunks of ``nodes`` (retrieval order) that go into the prompt whole."""
        return self._whole(nodes, count_tokens)[0]

    def _whole(
        self, nodes: Sequence[NodeWithScore], count_tokens: Callable[[str], int]
    ) -> tuple[list[NodeWithScore], Optional[NodeWithScore], int]:
        """The chunks given whole, the first chunk that did not fit (None: none was left out for the
        budget) and the tokens the chunks given hold."""
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
                return chosen, hit, used
            chosen.append(hit)
            seen.append(shingles)
            used += tokens
        return chosen, None, used

    def read(
        self,
        nodes: Sequence[NodeWithScore],
        count_tokens: Callable[[str], int],
        question_embedding: Optional[Sequence[float]] = None,
    ) -> Reading:
        """The chunks of ``nodes`` that go into the prompt (module docstring): those given whole
        (:meth:`choose`), the part of the next one that fits, and the sentences of their pages' other
        retrieved chunks closest to the question. Without the question's embedding or an embedding
        function, the chunks given whole as they are."""
        chosen, cut, used = self._whole(nodes, count_tokens)
        if self.embed_texts is None or question_embedding is None:
            return Reading(chosen)
        question = np.asarray(question_embedding, dtype=float)
        if cut is not None:
            header = count_tokens(cut.node.get_content(metadata_mode=MetadataMode.LLM)) - count_tokens(
                cut.node.get_content()
            )
            sentences = [split_sentences(cut.node.get_content())]
            picked = self._closest(sentences, set(), question, count_tokens, self.max_tokens - used - header)
            if picked:
                chosen = [*chosen, *self._widened([], [cut], sentences, picked).chunks]
        if not self.window_tokens:
            return Reading(chosen)
        taken = {hit.node.node_id for hit in chosen}
        pages = {_page(hit) for hit in chosen}
        lenders = [hit for hit in nodes if hit.node.node_id not in taken and _page(hit) in pages]
        given = {s for hit in chosen for s in split_sentences(hit.node.get_content())}
        sentences = [split_sentences(hit.node.get_content()) for hit in lenders]
        picked = self._closest(sentences, given, question, count_tokens, self.window_tokens)
        return self._widened(chosen, lenders, sentences, picked) if picked else Reading(chosen)

    def _closest(
        self,
        sentences: list[list[str]],
        given: set[str],
        question: np.ndarray,
        count_tokens: Callable[[str], int],
        budget: int,
    ) -> set[tuple[int, int]]:
        """Which sentences (chunk index, sentence index) of ``sentences`` to give, up to ``budget``
        tokens: the closest to the question first, each followed by the one before and after it in its
        chunk; none already ``given``."""
        assert self.embed_texts is not None
        flat = [(i, j) for i, found in enumerate(sentences) for j, s in enumerate(found) if s not in given]
        if not flat or budget <= 0:
            return set()
        vectors = np.asarray(self.embed_texts([sentences[i][j] for i, j in flat]), dtype=float)
        scores = vectors @ question / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(question) + 1e-12)
        picked: set[tuple[int, int]] = set()
        texts = set(given)
        used = 0
        for best in np.argsort(-scores):
            i, j = flat[best]
            for k in (j, j - 1, j + 1):  # the sentence, then its neighbours in its chunk
                if not 0 <= k < len(sentences[i]) or (i, k) in picked or sentences[i][k] in texts:
                    continue
                tokens = count_tokens(sentences[i][k])
                if used + tokens > budget:
                    continue
                picked.add((i, k))
                texts.add(sentences[i][k])
                used += tokens
        return picked

    @staticmethod
    def _widened(
        chosen: list[NodeWithScore],
        lenders: list[NodeWithScore],
        sentences: list[list[str]],
        picked: set[tuple[int, int]],
    ) -> Reading:
        """``chosen`` with each page's picked sentences appended to the first chosen chunk of that page,
        lender by lender in retrieval order, ``...`` wherever sentences were skipped. A lender whose page
        has no chunk in ``chosen`` (the chunk given in part) is added after them as a copy holding only
        its picked sentences."""
        chunks = list(chosen)
        excerpts: dict[str, list[str]] = {}
        for i, lender in enumerate(lenders):
            kept = sorted(k for n, k in picked if n == i)
            if not kept:
                continue
            runs: list[list[str]] = []
            for k in kept:
                if runs and k - 1 in kept:
                    runs[-1].append(sentences[i][k])
                else:
                    runs.append([sentences[i][k]])
            at = next((n for n, hit in enumerate(chunks) if _page(hit) == _page(lender)), None)
            if at is None:
                node = lender.node.model_copy(deep=True)
                node.set_content("\n...\n".join("\n".join(run) for run in runs))
                chunks.append(NodeWithScore(node=node, score=lender.score))
                continue
            node = chunks[at].node.model_copy(deep=True)
            node.set_content(node.get_content() + "".join("\n\n...\n" + "\n".join(run) for run in runs))
            chunks[at] = NodeWithScore(node=node, score=chunks[at].score)
            excerpts.setdefault(node.node_id, []).append(lender.node.node_id)
        return Reading(chunks, excerpts)


def token_counter(llm: object) -> Callable[[str], int]:
    """Tokens of a text as ``llm`` counts them (its own tokenizer when it has one, else LlamaIndex's)."""
    tokenize = getattr(llm, "tokenize", None)
    if callable(tokenize):
        return lambda text: len(tokenize(text))
    from llama_index.core.utils import get_tokenizer

    tokenizer = get_tokenizer()
    return lambda text: len(tokenizer(text))
