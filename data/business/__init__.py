"""The demo business database: ``schema.sql``, ``seed`` (its rows) and ``sql-examples.yaml``."""
