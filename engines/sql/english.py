"""The question's English, as the question checks and value linking read it: the words of an
identifier, a noun's singular and plural, stop words, whether a question asks "which" rows of a
table, speaks of the present, or asks for a unit of time shorter than a day.

Every English word list kb's SQL engine keeps is here: general English, none taken from a labelled
question; one place to review them (and to replace for another language). Nothing here reads the
schema: callers pass table and column names.
"""

from __future__ import annotations

import re

_CAMEL_CASE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def name_words(name: str) -> list[str]:
    """An identifier's words, lower case: ``requested_at`` and ``RequestedAt`` give requested, at."""
    return _CAMEL_CASE_BOUNDARY.sub(" ", name).replace("_", " ").lower().split()


def table_words(table: str) -> set[str]:
    """A table's name as a question writes it: ``support_tickets`` and ``SupportTickets`` as
    "support tickets" (and the name with only its underscores as spaces)."""
    return {" ".join(name_words(table)), table.replace("_", " ")}


def noun_forms(noun: str) -> set[str]:
    """A noun (a table's name) in the singular and the plural, lower case: ``categories`` gives
    category and categories, ``order`` gives order and orders."""
    noun = noun.lower()
    forms = {noun, noun + "s", noun + "es"}
    if noun.endswith("ies"):
        forms.add(noun[:-3] + "y")
    elif noun.endswith("y"):
        forms.add(noun[:-1] + "ies")
    if noun.endswith("es"):
        forms.add(noun[:-2])
    if noun.endswith("s"):
        forms.add(noun[:-1])
    return forms


def table_nouns(table: str) -> set[str]:
    """A table's name as a question writes it, in the singular and the plural (:func:`table_words`,
    :func:`noun_forms`): ``support_tickets`` gives support ticket, support tickets, ..."""
    return {form for words in table_words(table) for form in noun_forms(words)}


def asks_which(question: str, table: str) -> bool:
    """Whether the question asks which of the table's rows: its name as words (``support_tickets``
    and ``SupportTickets`` as "support tickets"), in the singular or the plural, after an
    interrogative ``which``/``what`` (up to two words between: "which two customers") or before a
    relative ``who``/``that``/``with`` ("the customer who ..."), and not as a possessive ("which
    album's tracks" asks which tracks). "At which airport are the most pilots based?" asks which
    airport, not which pilot."""
    for form in table_nouns(table):
        noun = re.escape(form)
        pattern = rf"\b(?:which|what)\s+(?:\w+\s+){{0,2}}?{noun}\b(?!['’])|\bthe\s+{noun}\s+(?:who|that|with)\b"
        if re.search(pattern, question, re.I):
            return True
    return False


# Words that place a question at the present moment: general English, not taken from any labelled question.
_NOW = re.compile(r"\b(?:current(?:ly)?|now|present(?:ly)?|today|at the moment|as of today)\b", re.I)


def speaks_of_now(question: str) -> bool:
    """Whether the question asks about the present: "current", "currently", "now", "at present",
    "today", "at the moment"."""
    return bool(_NOW.search(question))


WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Values that are only these words name nothing in particular ('a', 'no', 'other'): never linked.
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "many",
        "much",
        "no",
        "not",
        "of",
        "on",
        "or",
        "other",
        "the",
        "their",
        "there",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "with",
        "yes",
        "none",
        "all",
    ]
)


def words(text: str) -> tuple[str, ...]:
    """Lower-cased words of ``text``, punctuation and underscores dropped."""
    return tuple(WORD.findall(text.casefold()))


def is_code(value: str) -> bool:
    """Whether ``value`` is one word written in capitals ('WA', 'USA', 'MKT'): a code, which a question
    names only by its own letters (in any case: "mkt" names 'MKT'), never by another form of a word
    ("was" is not a plural of 'WA', nor "sees" of 'SE')."""
    return len(WORD.findall(value)) == 1 and value.isupper()


def mentions(question: str, value: str) -> bool:
    """Whether the question names ``value``: the value's words in a row among the question's, case
    and punctuation aside (a one-word value also in the singular or plural, :func:`noun_forms`,
    unless it is a code: :func:`is_code`)."""
    said, wanted = words(question), words(value)
    forms = {(form,) for form in noun_forms(wanted[0])} if len(wanted) == 1 and not is_code(value) else {wanted}
    return bool(wanted) and any(said[i : i + len(wanted)] in forms for i in range(len(said) - len(wanted) + 1))


def singular(noun: str) -> str:
    """The shortest of a noun's forms that :func:`noun_forms` also gives back ("orders" -> "order")."""
    return min((form for form in noun_forms(noun) if noun in noun_forms(form)), key=len)


# A question that asks for an amount of time in a unit shorter than a day: general English, no labelled
# question's ("in minutes", "how many hours").
SHORTER_THAN_A_DAY = re.compile(r"\b(?:in|how\s+many)\s+(minutes|hours|seconds)\b", re.I)
