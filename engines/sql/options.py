"""The SQL engine's settings, each declared once with its default, bounds and meaning.

:class:`SQLOptions` is a base of both :class:`kb.engines.sql.SQLEngine` (its fields) and
:class:`kb.config.SqlSettings` (``sql.*`` in config.yaml), and what :class:`kb.engines.sql.loop.StatementLoop`
reads a question's path from. The module imports nothing but pydantic, so that the configuration
reads it without loading the engine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

CandidateSource = Literal["samples", "prompts"]
CandidatesWhen = Literal["always", "doubt"]
ExamplesWhen = Literal["always", "doubt"]
ChecksRun = Literal["all", "statement", "none"]
WideSchema = Literal["catalogue", "retrieved"]


class SQLOptions(BaseModel):
    """How the SQL engine writes, checks, votes on and runs a question's statements."""

    row_limit: int = Field(200, ge=1, le=100000, description="rows fetched at most")
    timeout_s: float = Field(5.0, gt=0, le=600, description="a statement's time limit on the server, in seconds")
    max_tables_in_prompt: int = Field(
        40,
        ge=1,
        le=200,
        description="more tables, or more than the model's context window holds: the relevant ones are "
        "retrieved per question",
    )
    tables_retrieved: int = Field(
        5,
        ge=1,
        le=200,
        description="where each question's tables are retrieved: the tables shown at most, those the question "
        "names first, then the most similar (the tables that link two of them by foreign keys besides)",
    )
    wide_schema: WideSchema = Field(
        "retrieved",
        description="beyond max_tables_in_prompt or the context window: the CREATE TABLE of each question's "
        "closest tables (retrieved), or a one-line entry per table in every prompt where those fit "
        "(catalogue: the prompt stays the same, so its state is reused, but the offline model answers fewer "
        "questions right from it: docs/sql-engine.md)",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="statements the model writes per question, corrections included (kb's repairs besides)",
    )
    examples_when: ExamplesWhen = Field(
        "always",
        description="which prompts show the approved pairs: every one (always), or all but the greedy "
        "statement's (doubt: its corrections, the candidates and the rescue samples)",
    )
    candidates: int = Field(
        3,
        ge=1,
        le=16,
        description="statements written per question (the greedy one, then those of candidate_source) and voted "
        "on by the rows they give; 1: the greedy statement only",
    )
    candidates_when: CandidatesWhen = Field(
        "doubt",
        description="when the candidates after the greedy statement are written: always, or only on doubt "
        "(the greedy statement failed, was refused, ran with a defect or gave no rows)",
    )
    sample_temperature: float = Field(
        0.3, gt=0, le=2, description="the sampling temperature of the candidates after the greedy one"
    )
    candidate_source: CandidateSource = Field(
        "prompts",
        description="the candidates after the greedy one: samples of kb's prompt at sample_temperature "
        "(samples), or first the greedy statements of two other prompts (kb's rules over LlamaIndex's "
        "description of the tables, then LlamaIndex's text-to-SQL prompt over kb's), then samples (prompts)",
    )
    rescue_samples: int = Field(
        4,
        ge=0,
        le=16,
        description="when no statement (nor correction) runs clean: sampled statements written at "
        "rescue_temperature; the first rows two agree on answer, else the first that runs clean; 0: none",
    )
    rescue_temperature: float = Field(1.0, gt=0, le=2, description="the sampling temperature of the rescue samples")
    rewrites_answer: bool = Field(
        False,
        description="let a statement kb wrote for a defect answer when none of the model's statements gives "
        "its rows (false: it answers only where one of them agrees with it by rows)",
    )
    value_linking: bool = Field(
        True, description="tell the model which column holds each stored value the question names"
    )
    checks: ChecksRun = Field(
        "all",
        description="the checks of a statement that ran (engines/sql/checks.py): all; statement (none reads "
        "the question's words); none (the model's statement through the guard and kb's error repairs only)",
    )
    skip_checks: frozenset[str] = Field(
        frozenset(),
        description="checks switched off by name (kb.engines.sql.checks.CHECKS; docs/sql-engine.md lists them): "
        "one that misfires on your schema",
    )
    skip_repairs: frozenset[str] = Field(
        frozenset(),
        description="kb's own repairs of rejected statements switched off by name "
        "(kb.engines.sql.repairs.REPAIRS; docs/sql-engine.md lists them)",
    )
