"""Which chunks the answer prompt gets, and how they are widened (kb.engines.context), on hand-made chunks.

The embedding function is a word-count one written here, so that which sentence is "closest" is known;
the engines' tests run the same code with the real embedding model through ``KnowledgeBase.query``."""

from __future__ import annotations

from llama_index.core.schema import NodeRelationship, NodeWithScore, RelatedNodeInfo, TextNode

from kb.engines.context import ContextBudget

VOCABULARY = ["agent", "descaling", "filter", "tray", "warehouse"]


def embed(texts: list[str]) -> list[list[float]]:
    return [[float(text.lower().count(word)) + 0.01 for word in VOCABULARY] for text in texts]


QUESTION = embed(["descaling agent"])[0]


def chunk(node_id: str, page: str, text: str, score: float) -> NodeWithScore:
    node = TextNode(id_=node_id, text=text, metadata={"file_path": page})
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=page)
    return NodeWithScore(node=node, score=score)


def words(text: str) -> int:
    return len(text.split())


HITS = [
    chunk("a1", "care.md", "Descaling removes limescale. The light shows when it is time.", 0.9),
    chunk("b1", "shipping.md", "The descaling agent ships from the warehouse.", 0.8),
    chunk(
        "a2",
        "care.md",
        "Wipe the wand after use. The descaling agent is DS-40. Mix one part to ten. Empty the tray daily.",
        0.7,
    ),
    chunk("a3", "care.md", "Replace the filter every two months. Keep the box.", 0.6),
]


def test_the_closest_sentences_of_the_same_page_widen_the_chunk_given_with_their_neighbours():
    budget = ContextBudget(max_tokens=10, window_tokens=20, embed_texts=embed)
    reading = budget.read(HITS, words, QUESTION)
    assert [hit.node.node_id for hit in reading.chunks] == ["a1"]  # the budget holds one chunk
    widened = reading.chunks[0].node.get_content()
    assert widened.startswith(HITS[0].node.get_content())
    # the closest sentence (a2's second) with the one before and after it, marked as an excerpt
    assert "...\nWipe the wand after use.\nThe descaling agent is DS-40.\nMix one part to ten." in widened
    assert "warehouse" not in widened  # another page never lends, however close its sentence
    assert reading.excerpts == {"a1": ["a2"]} and reading.node_ids == ["a1", "a2"]
    assert sum(words(s) for s in widened[len(HITS[0].node.get_content()) :].split("\n") if s != "...") <= 20
    assert HITS[0].node.get_content() == "Descaling removes limescale. The light shows when it is time."  # a copy


def test_the_window_is_bounded_and_a_sentence_already_given_is_not_repeated():
    budget = ContextBudget(max_tokens=10, window_tokens=6, embed_texts=embed)
    widened = budget.read(HITS, words, QUESTION).chunks[0].node.get_content()
    assert "The descaling agent is DS-40." in widened  # 5 words; its neighbours do not fit in 6
    assert "Wipe the wand" not in widened and "Mix one part" not in widened
    repeated = [chunk("a1", "care.md", "The descaling agent is DS-40.", 0.9), *HITS[1:]]
    widened = budget.read(repeated, words, QUESTION).chunks[0].node.get_content()
    assert widened.count("The descaling agent is DS-40.") == 1


def test_nothing_is_widened_without_a_window_an_embedding_or_another_chunk_of_the_page():
    as_chosen = ["Descaling removes limescale. The light shows when it is time."]
    for budget, question in (
        (ContextBudget(max_tokens=10, window_tokens=0, embed_texts=embed), QUESTION),
        (ContextBudget(max_tokens=10, window_tokens=20, embed_texts=embed), None),  # a full-text-only query
        (ContextBudget(max_tokens=10, window_tokens=20), QUESTION),
    ):
        reading = budget.read(HITS, words, question)
        assert [hit.node.get_content() for hit in reading.chunks] == as_chosen and reading.excerpts == {}
    alone = ContextBudget(max_tokens=10, window_tokens=20, embed_texts=embed).read(HITS[:2], words, QUESTION)
    assert alone.excerpts == {} and "warehouse" not in alone.chunks[0].node.get_content()


def test_a_chunk_given_whole_does_not_lend_and_first_keeps_only_its_chunks_excerpts():
    budget = ContextBudget(max_tokens=100, window_tokens=20, embed_texts=embed)
    reading = budget.read(HITS, words, QUESTION)
    assert [hit.node.node_id for hit in reading.chunks] == ["a1", "b1", "a2", "a3"] and reading.excerpts == {}
    narrow = ContextBudget(max_tokens=22, window_tokens=30, embed_texts=embed).read(HITS, words, QUESTION)
    assert [hit.node.node_id for hit in narrow.chunks] == ["a1", "b1"] and narrow.excerpts == {"a1": ["a2", "a3"]}
    assert narrow.first(1).excerpts == {"a1": ["a2", "a3"]}
    assert narrow.first(1).node_ids == ["a1", "a2", "a3"]
    moved = [HITS[1], *HITS[:1], *HITS[2:]]  # the widened chunk second: first(1) keeps no excerpt
    second = ContextBudget(max_tokens=22, window_tokens=30, embed_texts=embed).read(moved, words, QUESTION)
    assert second.excerpts == {"a1": ["a2", "a3"]} and second.first(1).excerpts == {}


NEAR_MISS = [
    chunk("pack", "pack.txt", "One pack descales a Pro once.", 0.96),
    chunk(
        "pro",
        "pro.md",
        "The Pro has two boilers. Its tank holds two litres. Descaling agent: one pack every two months. "
        "The drip tray is dishwasher safe. The wand swivels.",
        0.95,
    ),
    chunk("mini", "mini.md", "Mini: descaling agent every three months.", 0.7),  # shorter, and fits
]


def test_a_chunk_that_does_not_fit_whole_is_given_in_part_and_nothing_ranked_below_it():
    budget = ContextBudget(max_tokens=20, window_tokens=0, embed_texts=embed)  # pack 8 words, pro 26
    reading = budget.read(NEAR_MISS, words, QUESTION)
    assert [hit.node.node_id for hit in reading.chunks] == ["pack", "pro"]  # never the lower-ranked mini
    part = reading.chunks[1].node.get_content()
    assert "Descaling agent: one pack every two months." in part  # the closest sentence
    assert "two boilers" not in part and words(part.replace("...", "")) <= 20 - 8 - 2  # left, less pro's header
    assert NEAR_MISS[1].node.get_content().startswith("The Pro has two boilers.")  # a copy
    assert reading.node_ids == ["pack", "pro"] and reading.excerpts == {}


def test_without_the_questions_embedding_the_chunks_up_to_the_first_that_does_not_fit_are_given():
    for budget, question in (
        (ContextBudget(max_tokens=20, window_tokens=20), QUESTION),
        (ContextBudget(max_tokens=20, window_tokens=20, embed_texts=embed), None),
    ):
        assert [hit.node.node_id for hit in budget.read(NEAR_MISS, words, question).chunks] == ["pack"]
    roomy = ContextBudget(max_tokens=100, embed_texts=embed).read(NEAR_MISS, words, QUESTION)
    assert [hit.node.get_content() for hit in roomy.chunks] == [hit.node.get_content() for hit in NEAR_MISS]
