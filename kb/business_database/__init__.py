"""The business database kb answers from: its provisioning (where it is, the read-only account that
reads it, the demo data), the examples for its prompt, and the SQL engine built for it from the
settings (``sql.*``)."""
