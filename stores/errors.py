"""The stores' errors: what a caller can act on. No dependencies, so catching them costs no import."""

from __future__ import annotations


class StoreError(Exception):
    """A problem with the database or its content that the user can act on."""


class DatabaseUnavailable(StoreError):
    """The server cannot be reached or refuses the login."""


class ServerTooOld(StoreError):
    """The server has no VECTOR type (MariaDB before 11.7, or not MariaDB at all)."""


class SchemaMismatch(StoreError):
    """An existing table does not have the shape this store was asked to use."""
