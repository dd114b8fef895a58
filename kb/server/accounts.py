"""The accounts on kb's private MariaDB (each with a generated password in ``credentials.json``)."""

ADMIN_USER = "kb_admin"
APP_USER = "kb"
READONLY_USER = "kb_reader"
REPLICATION_USER = "kb_repl"
KB_ACCOUNTS = (ADMIN_USER, APP_USER, READONLY_USER, REPLICATION_USER)
# The locked account that owns the system views (mysql.user is a view); it cannot log in.
SYSTEM_ACCOUNT = "mariadb.sys"
