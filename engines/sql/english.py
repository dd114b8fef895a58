"""The question's English, as the question checks and value linking read it: the words of an
identifier, a noun's singular and plural, stop words, and the phrases the checks look for ("how
many", "which", "each", today, amounts of time, days of the week, what gives a date).

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


def asks_for_column(question: str, table: str, column: str) -> bool:
    """Whether the question asks for a column of the table by a possessive: the table's name as words
    (singular or plural form), ``'s`` and the column's name as words (``Employee.LastName`` in "give the
    employee's last name"; ``customers.customer_name`` in "the customer's name" too: a column's name
    may repeat its table's)."""
    words = name_words(column)
    nouns = table_nouns(table)
    own = [words] + [words[len(n.split()) :] for n in nouns if words[: len(n.split())] == n.split()]
    for noun in nouns:
        for named in (w for w in own if w):
            phrase = r"\s+".join(re.escape(w) for w in named)
            if re.search(rf"\b{re.escape(noun)}['’]s\s+{phrase}\b", question, re.I):
                return True
    return False


_EACH = re.compile(r"\b(?:each|for\s+every)", re.I)


def asked_for_each(question: str, nouns: set[str]) -> str:
    """Where the question asks something of each one of ``nouns`` (phrases, lower case: a table's
    noun forms, a column's name as words): "each" or "for every", at most one word ("each billing
    country"), then the noun; the words it used ("each customer"), "" when it does not. "Each"
    distributes what is asked over the noun's items: "how many tickets has each customer opened" asks
    one count per customer."""
    if not _EACH.search(question):  # most questions: no pattern per noun to try
        return ""
    for noun in nouns:
        phrase = r"\s+".join(re.escape(word) for word in noun.split())
        found = re.search(rf"{_EACH.pattern}\s+(?:\w+\s+)?{phrase}\b", question, re.I) if phrase else None
        if found:
            return found.group(0)
    return ""


def plural(noun: str) -> str:
    """A noun's plural, lower case (a table named in the plural is its own): student -> students,
    category -> categories, address -> addresses, customers -> customers."""
    noun = noun.lower()
    if noun.endswith("s"):
        return noun if not noun.endswith(("ss", "us")) else noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("x", "ch", "sh")) else "s")


def asks_how_many(question: str, table: str) -> bool:
    """Whether the question asks how many of the table's rows there are: "how many", at most one word
    ("how many different students"; two would let "how many orders did customers ..." in), then the
    table's name as words in the plural, not as a possessive. After "how many" the noun counted is
    plural, so a singular name is a modifier: "how many customer orders" counts orders."""
    for form in {plural(words) for words in table_words(table)}:
        if re.search(rf"\bhow\s+many\s+(?:\w+\s+)?{re.escape(form)}\b(?!['’])", question, re.I):
            return True
    return False


# Words that place a question at the present moment: general English, not taken from any labelled question.
_NOW = re.compile(r"\b(?:current(?:ly)?|now|present(?:ly)?|today|at the moment|as of today)\b", re.I)


def speaks_of_now(question: str) -> bool:
    """Whether the question asks about the present: "current", "currently", "now", "at present",
    "today", "at the moment"."""
    return bool(_NOW.search(question))


# Words that measure time from the present moment or ask for a state that depends on it (general English:
# time adverbs, "the last 30 days", ages, deadlines that pass; not taken from any labelled question).
# Deciding that a question does NOT speak of a time relative to now errs toward finding such a word.
_UNITS_OF_TIME = r"(?:seconds?|minutes?|hours?|days?|weeks?|fortnights?|months?|quarters?|years?|decades?)"
_RELATIVE_TO_NOW = re.compile(
    r"\b(?:ago|yesterday|tomorrow|tonight|recent(?:ly)?|lately|so far|to date|as of|yet|still|anymore|any more|"
    r"no longer|overdue|expired?|expires|expiring|upcoming|future|past|remaining|until|till|since|elapsed|"
    r"how long|tenure|age|aged|ages|old|older|oldest|young|younger|youngest|has been|have been|"
    r"active|inactive|valid|ongoing|in effect|in progress|under way|pending|outstanding|open|"
    rf"(?:last|past|previous|preceding|next|coming|following|this|these)\s+(?:\w+\s+)?{_UNITS_OF_TIME})\b",
    re.I,
)


def speaks_of_a_time_relative_to_now(question: str) -> bool:
    """Whether the question places what it asks relative to the present moment, so that a statement may
    read today's date: the words of :func:`speaks_of_now`, time adverbs ("ago", "recently", "so far",
    "still", "yet"), a period counted from now ("the last 30 days", "next week", "this year"), ages
    ("older than 60"), deadlines that pass ("overdue", "expired", "upcoming") and states that hold
    until a date ("active", "valid", "pending", "open"). "Submitted less than 7 days before the first
    day of leave" has none: its days are counted between two of a row's dates."""
    return speaks_of_now(question) or bool(_RELATIVE_TO_NOW.search(question))


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


def mentions(question: str, value: str) -> bool:
    """Whether the question names ``value``: the value's words in a row among the question's, case
    and punctuation aside (a one-word value also in the singular or plural:
    :func:`noun_forms`)."""
    said, wanted = words(question), words(value)
    forms = {(form,) for form in noun_forms(wanted[0])} if len(wanted) == 1 else {wanted}
    return bool(wanted) and any(said[i : i + len(wanted)] in forms for i in range(len(said) - len(wanted) + 1))


def singular(noun: str) -> str:
    """The shortest of a noun's forms that :func:`noun_forms` also gives back ("orders" -> "order")."""
    return min((form for form in noun_forms(noun) if noun in noun_forms(form)), key=len)


# Periods a question asks about "each" of ("each year", "for every month").
PERIODS = {"year", "quarter", "month", "week", "day", "hour"}


# A question that asks for an amount of time in a unit shorter than a day: general English, no labelled
# question's ("in minutes", "how many hours").
SHORTER_THAN_A_DAY = re.compile(r"\b(?:in|how\s+many)\s+(minutes|hours|seconds)\b", re.I)


# The days of the week as the question names them, in DAYOFWEEK's order (1 is Sunday); WEEKDAY()
# counts from Monday (0). General English, no labelled question's.
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
WEEKDAY_NAMES = re.compile(rf"\b({'|'.join(WEEKDAYS)})s?\b", re.I)


# What in a question can give a date: a number, a month's or a season's name, a period's name.
# General English, no labelled question's.
GIVES_A_DATE = re.compile(
    r"\d|\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|spring|summer|autumn|fall|winter|christmas|years?|months?|"
    r"quarters?|weeks?|dates?|today|yesterday|tomorrow)\b",
    re.I,
)


UNIT_SECONDS = {
    **dict.fromkeys(("milliseconds", "millisecond", "millis", "ms", "msec"), 0.001),
    **dict.fromkeys(("seconds", "second", "secs", "sec"), 1.0),
    **dict.fromkeys(("minutes", "minute", "mins"), 60.0),
    **dict.fromkeys(("hours", "hour", "hrs", "hr"), 3600.0),
    **dict.fromkeys(("days", "day"), 86400.0),
}
_AMOUNT = r"(\d+(?:\.\d+)?|an?|one)"
_UNIT = r"(milliseconds?|seconds?|minutes?|hours?|days?)"
AMOUNTS_OF_TIME = re.compile(rf"\b{_AMOUNT}(?:\s*(?:and|to|or|-)\s*{_AMOUNT})?\s+{_UNIT}\b", re.IGNORECASE)


def amounts_of_time(question: str) -> list[tuple[str, float]]:
    """The amounts of time the question states, as written and in seconds: "longer than 5 minutes"
    gives ("5 minutes", 300.0); "between 3 and 5 minutes" gives both; "an hour" is one."""
    found = []
    for match in AMOUNTS_OF_TIME.finditer(question):
        unit = UNIT_SECONDS[match[3].lower()]
        for amount in (match[1], match[2]):
            if amount:
                number = float(amount) if amount[0].isdigit() else 1.0
                found.append((f"{amount} {match[3]}", number * unit))
    return found
