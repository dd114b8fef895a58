"""kb: a LlamaIndex knowledge base on MariaDB 11.8.

``from kb import KnowledgeBase`` is the entry point. Nothing heavy is imported until it is used, so
that the ``kb`` command starts in a fraction of a second (``kb --help``, ``kb db status``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kb.stores.lazy import lazy_exports

__all__ = ["KnowledgeBase", "Answer", "KBError", "load_settings"]

if TYPE_CHECKING:
    from kb.config import load_settings
    from kb.engines.answer import Answer
    from kb.errors import KBError
    from kb.knowledge_base import KnowledgeBase

__getattr__ = lazy_exports(
    __name__,
    {
        "KnowledgeBase": "kb.knowledge_base",
        "Answer": "kb.engines.answer",
        "KBError": "kb.errors",
        "load_settings": "kb.config",
    },
)
