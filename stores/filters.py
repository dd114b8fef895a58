"""LlamaIndex ``MetadataFilters`` -> a MariaDB ``WHERE`` fragment with bound parameters.

Semantics follow LlamaIndex's own in-memory evaluator (``build_metadata_filter_fn``, used by
``SimpleVectorStore``), so a filter means the same thing here as in any LlamaIndex example:

* a missing key or a JSON ``null`` matches only ``NE``, ``NIN`` and ``IS_EMPTY``;
* ``EQ``/``NE`` compare values of the same kind (a string never equals a number);
* ``GT``/``GTE``/``LT``/``LTE`` compare numbers with numbers and strings with strings (code-point
  order, case-sensitive);
* ``IN``/``NIN``: the stored value is (not) one of the listed values;
* ``CONTAINS``: a stored list holds the value, or a stored string contains it as a substring;
* ``ANY``/``ALL``: a stored list (or string) contains any / all of the listed values;
* ``TEXT_MATCH`` (case-sensitive) and ``TEXT_MATCH_INSENSITIVE``: substring of a stored string;
* ``IS_EMPTY``: missing, ``null``, ``""`` or ``[]``;
* ``AND``, ``OR``, and ``NOT`` (none of the sub-filters matches), nested to any depth.

Every predicate is wrapped in ``COALESCE(..., FALSE)`` so that SQL's three-valued logic never turns
``NOT`` of an unknown into an unknown. Values are always bound parameters and a key must be a plain
identifier path (``author`` or ``source.page``, dots meaning nesting), so neither can become SQL.
Comparisons use the binary collation: matching is literal and case-sensitive, like Python's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

_KEY_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
_NUMERIC_OPS = {FilterOperator.GT: ">", FilterOperator.GTE: ">=", FilterOperator.LT: "<", FilterOperator.LTE: "<="}
_COLLATE = "utf8mb4_bin"


class UnsupportedFilterError(ValueError):
    """A filter that this store cannot evaluate faithfully (never silently ignored)."""


class FilterTooLarge(UnsupportedFilterError):
    """Filters over a size limit (:class:`FilterLimits`); the message names the limit."""


# MariaDB's binary protocol numbers a prepared statement's parameters with 16 bits.
MAX_BOUND_PARAMETERS = 65535


@dataclass(frozen=True)
class FilterLimits:
    """How large one request's filters may be: values over all leaves, leaves, levels of nested
    groups, and parameters bound into the statement they compile to. The work a filter costs the
    database grows with each, so a service checks them before it takes a connection (kb serve's
    values: ``serve.max_filter_*``)."""

    values: int
    leaves: int
    depth: int
    parameters: int


def check_filter_size(filters: MetadataFilters | None, limits: FilterLimits, *, names: str = "") -> None:
    """:class:`FilterTooLarge` when ``filters`` exceed ``limits``; ``names`` is prefixed to each limit's
    name in the message (``serve.`` for ``serve.max_filter_values``). Walks without recursion, so any
    depth is measured safely; compiles (no database) only once the shape is within the limits."""
    if filters is None:
        return
    values = leaves = deepest = 0
    stack: list[tuple[Any, int]] = [(filters, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, MetadataFilters):
            deepest = max(deepest, depth)
            if deepest > limits.depth:
                raise FilterTooLarge(
                    f"filters nested more than {limits.depth} levels deep ({names}max_filter_depth); flatten them"
                )
            stack.extend((child, depth + 1) for child in item.filters)
            continue
        leaves += 1
        value = getattr(item, "value", None)
        values += len(value) if isinstance(value, list) else 1
        if leaves > limits.leaves:
            raise FilterTooLarge(f"more than {limits.leaves} filter conditions ({names}max_filter_leaves)")
        if values > limits.values:
            raise FilterTooLarge(
                f"more than {limits.values} filter values in all ({names}max_filter_values); "
                "filter on a coarser key (a collection, a folder) instead of listing values"
            )
    bound = len(compile_filters(filters)[1])
    if bound > limits.parameters:
        raise FilterTooLarge(
            f"the filters bind {bound} values into one statement, more than {limits.parameters} "
            f"({names}max_filter_parameters); use fewer conditions or values"
        )


def json_path(key: str) -> str:
    """``a.b`` -> ``$."a"."b"``, refusing anything but identifier segments."""
    if not isinstance(key, str) or not key:
        raise UnsupportedFilterError(f"invalid metadata key {key!r}: must be a non-empty string")
    segments = key.split(".")
    for segment in segments:
        if not _KEY_SEGMENT.match(segment):
            raise UnsupportedFilterError(
                f"invalid metadata key {key!r}: use letters, digits, '_' and '-' (not starting with a "
                "digit), with '.' between nested keys"
            )
    return "$" + "".join(f'."{segment}"' for segment in segments)


class _Compiler:
    """Builds SQL text and its parameter list together.

    Every ``?`` is produced by :meth:`_bind` at the point where it appears in the text (f-strings
    evaluate left to right), so the parameters are always in the order of the placeholders.
    """

    def __init__(self, column: str) -> None:
        self.column = column
        self.params: list[Any] = []

    def _bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    # -- value expressions ------------------------------------------------------------------
    def _raw(self, path: str) -> str:
        return f"JSON_EXTRACT({self.column}, {self._bind(path)})"

    def _type(self, path: str) -> str:
        return f"JSON_TYPE({self._raw(path)})"

    def _value(self, path: str) -> str:
        return f"JSON_VALUE({self.column}, {self._bind(path)})"

    def _string(self, path: str) -> str:
        """The stored value when it is a JSON string, else NULL."""
        return f"(CASE WHEN {self._type(path)} = 'STRING' THEN {self._value(path)} END) COLLATE {_COLLATE}"

    def _number(self, path: str) -> str:
        """The stored value when it is a JSON number or boolean (Python: ``True == 1``), else NULL."""
        return (
            f"(CASE WHEN {self._type(path)} IN ('INTEGER', 'DOUBLE', 'BOOLEAN') "
            f"THEN CAST({self._value(path)} AS DOUBLE) END)"
        )

    # -- predicates (each TRUE or FALSE, never NULL) --------------------------------------------
    @staticmethod
    def _definite(condition: str) -> str:
        """``condition`` with SQL's unknown (NULL: a missing key, another type) read as FALSE."""
        return f"COALESCE({condition}, FALSE)"

    def _equals_any(self, path: str, values: Sequence[Any]) -> str:
        """The stored scalar equals one of ``values`` (a string never equals a number)."""
        strings = [v for v in values if isinstance(v, str)]
        numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(strings) + len(numbers) != len(values):
            raise UnsupportedFilterError(f"filter values must be strings or numbers, got {values!r}")
        parts = []
        if strings:
            parts.append(self._definite(f"{self._string(path)} IN ({', '.join(self._bind(v) for v in strings)})"))
        if numbers:
            parts.append(self._definite(f"{self._number(path)} IN ({', '.join(self._bind(v) for v in numbers)})"))
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"

    def _holds(self, path: str, value: Any) -> str:
        """Python's ``value in stored``: list membership, or substring of a stored string."""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise UnsupportedFilterError(f"cannot test whether a stored value holds {value!r}")
        subject = self._type(path)
        array_case = f"WHEN 'ARRAY' THEN JSON_CONTAINS({self._raw(path)}, {self._bind(json.dumps(value))})"
        string_case = ""
        if isinstance(value, str):
            string_case = (
                f" WHEN 'STRING' THEN LOCATE({self._bind(value)} COLLATE {_COLLATE}, "
                f"{self._value(path)} COLLATE {_COLLATE}) > 0"
            )
        return self._definite(f"CASE {subject} {array_case}{string_case} END")

    def _present(self, path: str) -> str:
        """The key exists and is not JSON null."""
        return self._definite(f"{self._type(path)} <> 'NULL'")

    def _is_empty(self, path: str) -> str:
        """Missing, JSON null, an empty string or an empty list (LlamaIndex's IS_EMPTY)."""
        missing = f"{self._type(path)} IS NULL OR {self._type(path)} = 'NULL'"
        empty_list = f"{self._type(path)} = 'ARRAY' AND JSON_LENGTH({self._raw(path)}) = 0"
        return self._definite(f"{missing} OR {self._string(path)} = '' OR ({empty_list})")

    def leaf(self, flt: MetadataFilter) -> str:
        op = flt.operator
        path = json_path(flt.key)
        value = flt.value
        if op == FilterOperator.IS_EMPTY:
            return self._is_empty(path)
        if op in (FilterOperator.EQ, FilterOperator.NE):
            if isinstance(value, list):
                raise UnsupportedFilterError(f"{op.value} takes one value, not a list; use in/nin for {flt.key!r}")
            equal = self._equals_any(path, [value])
            return equal if op == FilterOperator.EQ else f"(NOT {equal})"
        if op in _NUMERIC_OPS:
            sign = _NUMERIC_OPS[op]
            if isinstance(value, str):
                return self._definite(f"{self._string(path)} {sign} {self._bind(value)}")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return self._definite(f"{self._number(path)} {sign} {self._bind(float(value))}")
            raise UnsupportedFilterError(f"{op.value} needs a number or a string for {flt.key!r}, got {value!r}")
        if op in (FilterOperator.IN, FilterOperator.NIN):
            values = value if isinstance(value, list) else [value]
            member = self._equals_any(path, values)
            return member if op == FilterOperator.IN else f"(NOT {member})"
        if op == FilterOperator.CONTAINS:
            if isinstance(value, list):
                raise UnsupportedFilterError(f"contains takes one value; use any/all with a list for {flt.key!r}")
            return self._holds(path, value)
        if op in (FilterOperator.ANY, FilterOperator.ALL):
            values = value if isinstance(value, list) else [value]
            if not values:
                return "FALSE" if op == FilterOperator.ANY else self._present(path)
            joiner = " OR " if op == FilterOperator.ANY else " AND "
            return "(" + joiner.join(self._holds(path, v) for v in values) + ")"
        if op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
            if not isinstance(value, str):
                raise UnsupportedFilterError(f"{op.value} needs a string for {flt.key!r}, got {value!r}")
            if op == FilterOperator.TEXT_MATCH:
                return self._definite(f"LOCATE({self._bind(value)} COLLATE {_COLLATE}, {self._string(path)}) > 0")
            needle = self._bind(value.lower())
            return self._definite(f"LOCATE({needle} COLLATE {_COLLATE}, LOWER({self._string(path)})) > 0")
        raise UnsupportedFilterError(f"filter operator {op!r} is not supported")

    def group(self, filters: MetadataFilters) -> str:
        parts = []
        for item in filters.filters:
            if isinstance(item, MetadataFilters):
                parts.append(self.group(item))
            elif isinstance(item, MetadataFilter):
                parts.append(self.leaf(item))
            else:
                raise UnsupportedFilterError(f"not a filter: {item!r}")
        condition = filters.condition or FilterCondition.AND
        if not parts:
            return "TRUE"
        if condition == FilterCondition.AND:
            return "(" + " AND ".join(parts) + ")"
        if condition == FilterCondition.OR:
            return "(" + " OR ".join(parts) + ")"
        if condition == FilterCondition.NOT:
            return "(NOT (" + " OR ".join(parts) + "))"
        raise UnsupportedFilterError(f"filter condition {condition!r} is not supported")


def compile_filters(filters: MetadataFilters | None, column: str = "`metadata`") -> tuple[str, list[Any]]:
    """``(sql, params)`` for a WHERE clause; ``("TRUE", [])`` when there is nothing to filter.

    ``column`` is SQL text chosen by the store (a quoted column name), never user input.
    """
    if filters is None or not filters.filters:
        return "TRUE", []
    compiler = _Compiler(column)
    sql = compiler.group(filters)
    if len(compiler.params) > MAX_BOUND_PARAMETERS:
        raise FilterTooLarge(
            f"the filters bind {len(compiler.params)} values into one statement; MariaDB takes at most "
            f"{MAX_BOUND_PARAMETERS}: use fewer conditions or values"
        )
    return sql, compiler.params
