"""Errors that mean "the user must do something", as opposed to bugs.

The CLI prints these as one line and exits non-zero; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class KBError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do."""

    exit_code: int = 1


class ConfigError(KBError):
    """The configuration (file or environment) is invalid or incomplete."""

    exit_code = 2


class ServerError(KBError):
    """The private MariaDB server cannot be provisioned, started or stopped."""
