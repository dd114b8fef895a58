"""API keys of ``kb serve``: who may ask, in which collections, with which scope and limits.

A key is shown once, when it is created, and only its SHA-256 is stored. A plain hash (no salt, no
slow KDF) is enough and is what GitHub and Stripe do for their tokens: a key is 256 random bits, so
there is nothing to guess, and the hash is unique, so a request's key is found by one indexed lookup.

Scopes are ordered: ``read`` (ask, chat, search, route) < ``write`` (also index) < ``admin`` (also
the service's metrics and every key's access log). A key's collections bound what it sees whatever
its scope; the database route is a separate grant (``--sql``).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

import mariadb

from kb.collections import ALL_COLLECTIONS
from kb.errors import KBError
from kb.stores.connection import MariaDBConnection, create_table

SCOPES = ("read", "write", "admin")
PREFIX = "kb-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,99}$")


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key as the service sees it (never the secret itself)."""

    id: int
    name: str
    scope: str
    collections: tuple[str, ...]
    sql: bool
    requests_per_minute: Optional[int] = None
    tokens_per_minute: Optional[int] = None
    created_at: Optional[datetime] = None
    revoked_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None  # None: never
    expired: bool = False  # expires_at has passed, by the database's clock when the key was read

    def allows(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    def sees(self, collection: str) -> bool:
        return ALL_COLLECTIONS in self.collections or collection in self.collections

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "collections": list(self.collections),
            "sql": self.sql,
            "requests_per_minute": self.requests_per_minute,
            "tokens_per_minute": self.tokens_per_minute,
            "created_at": self.created_at.isoformat(timespec="seconds") if self.created_at else None,
            "revoked_at": self.revoked_at.isoformat(timespec="seconds") if self.revoked_at else None,
            "expires_at": self.expires_at.isoformat(timespec="seconds") if self.expires_at else None,
            "expired": self.expired,
        }


class KeyStore:
    """The keys table in kb's MariaDB."""

    _COLUMNS = (
        "id, name, scope, collections, sql_allowed, requests_per_minute, tokens_per_minute, created_at, revoked_at, "
        "expires_at, COALESCE(expires_at <= CURRENT_TIMESTAMP(6), FALSE)"
    )

    def __init__(self, connection: MariaDBConnection, table_name: str = "kb_api_keys") -> None:
        self._conn = connection
        self._table = create_table(
            self._conn,
            table_name,
            """
                id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                name VARCHAR(100) NOT NULL,
                key_hash CHAR(64) CHARACTER SET ascii NOT NULL,
                scope ENUM('read', 'write', 'admin') NOT NULL,
                collections JSON NOT NULL,
                sql_allowed BOOLEAN NOT NULL DEFAULT FALSE,
                requests_per_minute INT UNSIGNED NULL,
                tokens_per_minute INT UNSIGNED NULL,
                created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                revoked_at TIMESTAMP(6) NULL,
                UNIQUE KEY by_name (name),
                UNIQUE KEY by_hash (key_hash)
            """,
            added_columns=[("expires_at", "TIMESTAMP(6) NULL")],
        )

    def create(
        self,
        name: str,
        *,
        collections: list[str],
        scope: str = "read",
        sql: bool = False,
        requests_per_minute: Optional[int] = None,
        tokens_per_minute: Optional[int] = None,
        expires_in_s: Optional[float] = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (shown to the user once; only its hash is kept); with
        ``expires_in_s``, refused from that many seconds on (the database's clock)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise KBError(f"invalid key name {name!r}: 1 to 100 letters, digits, '_', '.', '@' or '-'")
        if scope not in SCOPES:
            raise KBError(f"invalid scope {scope!r}: one of {', '.join(SCOPES)}")
        if not collections:
            raise KBError("a key needs at least one collection (--collections a,b, or '*' for all)")
        for limit in (requests_per_minute, tokens_per_minute):
            if limit is not None and limit < 1:
                raise KBError("rate limits must be at least 1 per minute")
        if expires_in_s is not None and not 0 < expires_in_s <= 100 * 366 * 86400:
            raise KBError("a key's lifetime must be positive (and under a hundred years)")
        secret = PREFIX + secrets.token_urlsafe(32)
        try:
            self._conn.execute(
                f"INSERT INTO {self._table} (name, key_hash, scope, collections, sql_allowed, requests_per_minute, "
                "tokens_per_minute, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
                "IF(? IS NULL, NULL, CURRENT_TIMESTAMP(6) + INTERVAL ? MICROSECOND))",
                (
                    name,
                    hash_key(secret),
                    scope,
                    json.dumps(collections),
                    sql,
                    requests_per_minute,
                    tokens_per_minute,
                    expires_in_s,
                    None if expires_in_s is None else int(expires_in_s * 1e6),
                ),
            )
        except mariadb.IntegrityError:
            raise KBError(f"a key named {name!r} exists already (revoked keys keep their name); pick another") from None
        key = self.get(name)
        assert key is not None
        return key, secret

    def _key(self, row: tuple) -> ApiKey:
        id_, name, scope, collections, sql, rpm, tpm, created, revoked, expires, expired = row
        return ApiKey(
            int(id_),
            name,
            scope,
            tuple(json.loads(collections)),
            bool(sql),
            rpm,
            tpm,
            created,
            revoked,
            expires,
            bool(expired),
        )

    def get(self, name: str) -> Optional[ApiKey]:
        rows = self._conn.fetchall(f"SELECT {self._COLUMNS} FROM {self._table} WHERE name = ?", (name,))
        return self._key(rows[0]) if rows else None

    def list(self) -> list[ApiKey]:
        return [self._key(r) for r in self._conn.fetchall(f"SELECT {self._COLUMNS} FROM {self._table} ORDER BY id")]

    def revoke(self, name: str) -> bool:
        """Revoke a key at once (its next request is refused); False when no active key has that name."""
        changed = self._conn.execute(
            f"UPDATE {self._table} SET revoked_at = CURRENT_TIMESTAMP(6) WHERE name = ? AND revoked_at IS NULL",
            (name,),
        )
        return changed > 0

    def authenticate(self, secret: str) -> Optional[ApiKey]:
        """The active key with this secret (not revoked, not expired), or None."""
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        rows = self._conn.fetchall(
            f"SELECT {self._COLUMNS} FROM {self._table} WHERE key_hash = ? AND revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > CURRENT_TIMESTAMP(6))",
            (hash_key(secret),),
        )
        return self._key(rows[0]) if rows else None
