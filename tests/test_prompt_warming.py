"""Warming the SQL prompt: the business database's prompt up to the question is evaluated once, before
any question, and every question's prompt then begins with it (the offline default model, for real)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import BUSINESS_TABLES

from kb.engines.sql.engine import SQLEngine
from kb.models.factories import local_llm_path
from kb.models.local_llm import LocalLlamaCPP
from kb.stores.connection import MariaDBConnection


def _kept_prompts(folder: Path) -> dict[str, list[int]]:
    """The token ids of every prompt state kept on disk (kb.models.prompt_cache's files), by file."""
    return {path.name: np.load(path, allow_pickle=False).tolist() for path in folder.glob("*/*.tokens.npy")}


def _shared_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_the_prompt_up_to_the_question_is_warmed_once_and_begins_every_question(business, project_settings, tmp_path):
    part = project_settings.active_profile.llm
    llm = LocalLlamaCPP(
        model_path=str(local_llm_path(project_settings, part)),
        context_window=part.context_window,
        prompt_cache_dir=str(tmp_path),
    )
    engine = SQLEngine(llm, MariaDBConnection(business), database="kb_business", tables=BUSINESS_TABLES, candidates=1)
    assert engine.warm_prompt_cache() == 1
    warmed = _kept_prompts(tmp_path)
    assert len(warmed) == 1 and all(name.startswith("pinned-") for name in warmed)  # kept before whole prompts
    (beginning,) = warmed.values()
    # the schema and the rules up to "Question: ", then the one token the warming generated
    assert len(beginning) > 500
    assert llm._model.detokenize(beginning[-8:-1]).decode("utf-8", "replace").endswith("Question: ")

    sql = engine.write_sql("How many orders were placed in 2025?")
    assert "orders" in sql.lower()  # the question was answered, not prefilled
    asked = [tokens for name, tokens in _kept_prompts(tmp_path).items() if name not in warmed]
    assert len(asked) == 1 and not any(name.startswith("pinned-") for name in _kept_prompts(tmp_path).keys() - warmed)
    # the question's prompt begins with the warmed tokens (the last, the reply's one token, aside)
    assert _shared_prefix(beginning, asked[0]) >= len(beginning) - 2
    # a second warming finds the beginning kept: it writes no new state
    assert engine.warm_prompt_cache() == 1
    assert len(_kept_prompts(tmp_path)) == 2
