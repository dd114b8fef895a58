"""kb's SQL engine: a question about the business database -> a guarded, checked statement -> rows ->
an answer, as a LlamaIndex query engine (:class:`SQLEngine`).

Read top-down, a question's path through the modules:

* :mod:`.engine`: the loop. The prompt (the schema, examples, value hints), the greedy statement and
  the candidates voted on by their rows, the guard, the server, corrections, rescue samples, the answer.
* :mod:`.schema`: the tables as the prompt shows them (keys declared and inferred, small value lists,
  names several tables share) and a statement's tables placed in the schema.
* :mod:`.values`: value linking, which column holds each value the question names.
* :mod:`.guard`: the read-only guard: one ``SELECT`` over the allowed tables, or a refusal.
* :mod:`.repairs`: what kb mends itself in a statement the server rejected (a missing join).
* :mod:`.checks`: the registry of defect checks of a statement that ran (kind ``statement`` or
  ``question``), whose messages go back to the model.
* :mod:`.ties`: rows a ``LIMIT`` cut although they tie with its last row.
* :mod:`.english`: every English word list and phrase the question checks and value linking read.

Installed as ``kb.engines.sql``; ``SQLEngine``, ``SQLOutcome``, ``Statement`` and ``Votes`` are
importable from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kb.stores.lazy import lazy_exports

__all__ = ["SQLEngine", "SQLOutcome", "Statement", "Votes"]

if TYPE_CHECKING:
    from kb.engines.sql.engine import SQLEngine, SQLOutcome, Statement, Votes

__getattr__ = lazy_exports(__name__, {name: "kb.engines.sql.engine" for name in __all__})
