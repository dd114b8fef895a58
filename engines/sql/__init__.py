"""kb's SQL engine: a question about the business database -> a guarded, checked statement -> rows ->
an answer, as a LlamaIndex query engine (:class:`SQLEngine`).

Read top-down, a question's path through the modules:

* :mod:`.engine`: ``SQLEngine``, whose ``compute`` runs a question's stages in order.
* :mod:`.options`: ``SQLOptions``, the engine's settings (``sql.*`` in config.yaml), declared once.
* :mod:`.writers`: the prompts (the schema, rules, examples, value hints) and the writers that send
  them; the table retriever for many tables; the prompt cache's warming.
* :mod:`.loop`: the attempts (kb's repairs, the model's corrections), the rescue samples, the vote stage.
* :mod:`.vote`: execution-guided selection, statements grouped by their rows.
* :mod:`.runner`: a checked statement run read-only, time-limited and row-capped.
* :mod:`.answering`: the answer sentence written from the rows.
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
    from kb.engines.sql.engine import SQLEngine
    from kb.engines.sql.loop import SQLOutcome
    from kb.engines.sql.runner import Statement
    from kb.engines.sql.vote import Votes

__getattr__ = lazy_exports(
    __name__,
    {
        "SQLEngine": "kb.engines.sql.engine",
        "SQLOutcome": "kb.engines.sql.loop",
        "Statement": "kb.engines.sql.runner",
        "Votes": "kb.engines.sql.vote",
    },
)
