"""kb's llama.cpp LLM (kb.models.local_llm) leaves out the sentences a looping model repeats
(kb.models.repetition): where a repeat is dropped, and where it must not be; and it frees its models
at exit."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from kb.config import load_settings
from kb.models.factories import build_llm
from kb.models.local_llm import STOP, chatml
from kb.models.repetition import RepeatedSentences


def passed_on(text: str, piece: int) -> tuple[str, RepeatedSentences]:
    """``text`` fed to a watch ``piece`` characters at a time, as a stream of tokens would be."""
    watch = RepeatedSentences()
    out = "".join(watch.push(text[i : i + piece]) for i in range(0, len(text), piece)) + watch.finish()
    assert out == watch.kept
    return out, watch


def long_sentences(text: str) -> list[str]:
    """The sentences of ``text`` that a watch remembers, without their list markers."""
    parts = re.split(r"(?<=[.!?:])\s+", text)
    return [s for s in (re.sub(r"^(?:\d+[.)]|[-*])\s*", "", p.strip()) for p in parts) if len(s) >= 20]


@pytest.mark.parametrize("piece", [1, 3, 7, 1000])
def test_a_sentence_written_again_is_dropped_wherever_the_stream_is_cut(piece):
    looped = "The result has more than 200 rows. The first 5 rows are: " * 3 + "Ida Andersson | 2, Eero Virtanen | 1"
    out, watch = passed_on(looped, piece)
    assert out == "The result has more than 200 rows. The first 5 rows are: Ida Andersson | 2, Eero Virtanen | 1"
    assert watch.repeats == 4 and watch.looping


@pytest.mark.parametrize("piece", [1, 4])
def test_a_numbered_item_repeating_an_earlier_one_is_dropped_with_its_number(piece):
    listed = (
        "1. The moon is a natural satellite of Earth.\n2. The moon has a rocky and dusty surface.\n"
        "3. The moon has a rocky and dusty surface.\n4. The moon is about 384,400 km away.\n"
    )
    out, watch = passed_on(listed, piece)
    assert out == (
        "1. The moon is a natural satellite of Earth.\n2. The moon has a rocky and dusty surface.\n"
        "4. The moon is about 384,400 km away.\n"
    )
    assert watch.repeats == 1 and not watch.looping


@pytest.mark.parametrize(
    "text",
    [
        "Yes. Yes. No rows matched.",  # short sentences may be said twice
        "It costs 2.5 EUR at 12:30 today. It costs 2.5 EUR at 12:30 tomorrow.",  # no end inside 2.5 or 12:30
        "Karl Johansson | 3\nKarl Johansson | 3\n",  # two equal rows of a result: lines, not sentences
        "- Karl Johansson has 3 tickets open.\n- Karl Johansson has 3 tickets closed.\n",
        "The order was shipped on 2025-03-01. The order was shipped on time",  # begins like one, differs
    ],
)
def test_text_that_repeats_no_long_sentence_is_passed_on_as_written(text):
    for piece in (1, 2, 5, len(text)):
        out, watch = passed_on(text, piece)
        assert out == text and watch.repeats == 0


def test_a_repeat_cut_by_the_token_limit_is_dropped_and_a_short_ending_is_not():
    assert passed_on("The result has more than 200 rows. The result has more than 20", 2)[0] == (
        "The result has more than 200 rows."
    )
    assert passed_on("The result has more than 200 rows. The", 2)[0] == "The result has more than 200 rows. The"


def test_the_local_model_stops_a_loop_and_continues_without_it():
    """SmolLM2-135M asked for ten facts loops on one sentence; kb's LLM passes it on once, stops the
    loop and continues with the repetition penalty (new sentences after it), streamed and not."""
    llm = build_llm(load_settings(ROOT / "config.yaml", environ={"KB_PROFILE": "tiny"}))
    question = "List ten facts about the moon."
    prompt = chatml([ChatMessage(role=MessageRole.USER, content=question)])
    raw = llm._model.create_completion(prompt, max_tokens=256, temperature=0.0, stop=STOP)["choices"][0]["text"]
    raw_sentences = long_sentences(raw)
    assert len(raw_sentences) - len(set(raw_sentences)) >= 2, raw  # the loop this test is about

    answer = llm.complete(question).text
    streamed = "".join(piece.delta or "" for piece in llm.stream_complete(question))
    for text in (answer, streamed):
        sentences = long_sentences(text)
        assert len(sentences) == len(set(sentences)), text
        assert set(sentences) - set(raw_sentences), text  # the continuation wrote something new
    assert streamed == answer


def test_the_local_model_ends_a_generation_before_a_stop_text_of_its_own():
    """A copy with ``stop`` (as kb's SQL writers use it) ends where the text would begin; the rest of
    what the model writes up to there is unchanged."""
    llm = build_llm(load_settings(ROOT / "config.yaml", environ={"KB_PROFILE": "tiny"}))
    question = "List ten facts about the moon."
    prompt = chatml([ChatMessage(role=MessageRole.USER, content=question)])
    raw = llm._model.create_completion(prompt, max_tokens=64, temperature=0.0, stop=STOP)["choices"][0]["text"]
    stop_text = raw.split()[5]  # a word well inside what it writes
    stopped = llm.model_copy(update={"stop": [stop_text]}).complete(question).text
    assert stop_text not in stopped and raw.startswith(stopped) and len(stopped) < len(raw), (raw, stopped)
    assert len(llm.complete(question).text) > len(stopped)  # the model it was copied from has no such stop


def test_a_prompt_state_restored_from_the_cache_continues_as_the_prompt_first_did(tmp_path, monkeypatch):
    """The states kb's model keeps hold no logits (kb.models.prompt_cache.PromptStateLlama), and a
    prompt whose state is restored from the cache is answered as it was when first evaluated."""
    from kb.models.factories import local_llm_path
    from kb.models.local_llm import LocalLlamaCPP

    settings = load_settings(ROOT / "config.yaml", environ={"KB_PROFILE": "tiny"})
    part = settings.active_profile.llm
    llm = LocalLlamaCPP(
        model_path=str(local_llm_path(settings, part)),
        context_window=part.context_window,
        prompt_cache_dir=str(tmp_path),
    )
    model = llm._model
    restored = []
    kb_load = model.load_state
    monkeypatch.setattr(model, "load_state", lambda state: (restored.append(state.n_tokens), kb_load(state)))

    question = "List five facts about the moon."
    first = llm.complete(question).text
    llm.complete("Name three colours of the rainbow.")  # the context now holds another prompt
    again = llm.complete(question).text
    assert restored, "the first prompt's state was not restored from the cache"
    assert again == first and first
    state = model.save_state()
    assert state.scores.nbytes <= 4 * model.n_vocab()  # no n_batch x vocabulary logits buffer
    assert state.n_tokens == model.n_tokens and state.llama_state_size == len(state.llama_state) > 0


def test_a_process_frees_its_shared_models_at_exit_while_the_bindings_are_there():
    """The tiny model, loaded and used, is freed by kb's exit hook (a check registered before it runs
    after it) and nothing is printed about a failed finaliser."""
    script = """
import atexit, sys
used = []
atexit.register(lambda: print("freed at exit:", used[0]._model._model.model is None))
from kb.config import load_settings
from kb.models.factories import build_llm
llm = build_llm(load_settings(sys.argv[1], environ={"KB_PROFILE": "tiny"}))
llm.complete("Say hello.")
used.append(llm)
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "config.yaml")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "freed at exit: True" in done.stdout, done.stdout + done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_pinned_prompt_beginning_outlives_the_whole_prompts_stored_after_it():
    import numpy as np

    from kb.models.prompt_cache import PromptStateCache

    class State:
        def __init__(self, size: int) -> None:
            self.llama_state = bytes(size)
            self.llama_state_size = size
            self.scores = np.zeros((1, 8), dtype=np.single)

    cache = PromptStateCache(capacity_bytes=300)  # room for three states of 100 bytes, in RAM only
    schema = list(range(50))
    with cache.pinning():
        cache[schema] = State(100)
    for question in range(5):  # whole prompts, each the schema and its own question
        cache[schema + [1000 + question]] = State(100)
    assert schema + [1004] in cache and schema + [1003] in cache
    assert cache[schema + [2000]].llama_state_size == 100  # found: the beginning the next question shares
    assert tuple(schema) in cache._ram  # pinned: never evicted while unpinned states are left
    assert tuple(schema + [1000]) not in cache._ram  # the oldest whole prompts went instead
    unpinned = PromptStateCache(capacity_bytes=300)
    unpinned[schema] = State(100)
    for question in range(5):
        unpinned[schema + [1000 + question]] = State(100)
    assert tuple(schema) not in unpinned._ram  # without pinning, the beginning is the first to go
