"""Small SQL and vector helpers every store uses: one place each (pgvector-python's ``vector.py`` way).

* :func:`placeholders` - ``?, ?, ?`` for an ``IN (...)`` list of bound values;
* :func:`batched` - slices of a sequence, so that no statement carries more than ``size`` values;
* :func:`to_bytes` / :func:`from_bytes` - the float32 little-endian codec of MariaDB's ``VECTOR``
  (and of kb's embedding cache), so a vector is never encoded two ways.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")
IN_BATCH = 1000  # values per IN (...) list: well under the server's limits, few round trips
VECTOR_DTYPE = "<f4"


def placeholders(count: int) -> str:
    """``?, ?, ...`` for ``count`` bound values (at least one: ``IN ()`` is not SQL)."""
    if count < 1:
        raise ValueError("an IN list needs at least one value")
    return ", ".join("?" * count)


def batched(items: Sequence[T], size: int = IN_BATCH) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def to_bytes(vector: Sequence[float] | np.ndarray) -> bytes:
    """A vector as MariaDB's ``VECTOR`` stores it: little-endian float32."""
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    """The float32 vector stored in ``data`` (see :func:`to_bytes`)."""
    return np.frombuffer(data, dtype=VECTOR_DTYPE)


def as_matrix(vectors: Sequence[Sequence[float]], dim: int) -> np.ndarray:
    """Vectors as one float32 matrix of ``dim`` columns, in the stored byte order."""
    return np.asarray(vectors, dtype=VECTOR_DTYPE).reshape(len(vectors), dim)
