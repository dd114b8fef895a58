"""Secrets in the configuration: database URLs and API keys that never show in output.

A URL keeps its host and database visible (so messages can say where kb connects) and masks only
its password; an API key shows as ``***``. Both hold the plain value for the code that needs it
(``.get_secret_value()``). A URL that SQLAlchemy cannot read is refused when the configuration is
loaded, with what to fix and without echoing it: a password with ``@`` in it is the usual cause.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, SecretStr


def mask_url(url: str) -> str:
    """A URL with its password replaced by ***: what messages and ``kb config show`` may print."""
    return re.sub(r"(//[^/@]*?:)[^@/]*(@)", r"\1***\2", url)


class SecretURL(SecretStr):
    """A database URL: its password never shows in str(), repr() or a dump of the settings."""

    def _display(self) -> str:
        return mask_url(self.get_secret_value())


def _checked_url(value: Any) -> Any:
    """Refuse a database URL SQLAlchemy cannot read, saying what to fix and never echoing it (it may
    hold a password)."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ValueError("must be a URL such as mariadb://user:password@host:3306/database")
    if not re.match(r"^(mariadb|mysql)(\+\w+)?://", raw):
        raise ValueError(
            "must be a URL such as mariadb://user:password@host:3306/database "
            "(it does not start with mariadb:// or mysql://)"
        )
    from sqlalchemy.engine import make_url  # only when a URL is set: `kb --help` need not load SQLAlchemy

    try:
        parsed = make_url(raw)
        if parsed.host and "@" in parsed.host:
            raise ValueError("a host name holds no @")  # a password's @ read as part of the host
    except Exception:
        raise ValueError(
            "is not a URL kb can read (mariadb://user:password@host:3306/database); if the password "
            "contains @ : / # or %, percent-encode those characters (@ is %40, : is %3A, / is %2F)"
        ) from None
    return raw


# In a JSON dump: the URL with the password masked (pydantic would print only "**********").
DatabaseURL = Annotated[
    SecretURL,
    BeforeValidator(_checked_url),
    PlainSerializer(lambda value: str(value), return_type=str, when_used="json"),
]
Secret = Annotated[SecretStr, PlainSerializer(lambda value: "***", return_type=str, when_used="json")]
