"""The private server lets in kb's own accounts only, keeps files out of reach, and mends older data directories."""

from __future__ import annotations

import stat

import mariadb
import pytest

from kb.server.accounts import REPLICATION_USER
from kb.server.private_server import KB_ACCOUNTS, SYSTEM_ACCOUNT, PrivateServer
from kb.stores.connection import MariaDBConnection


@pytest.fixture(scope="module")
def fresh_server(start_spare_server):
    """A second private server bootstrapped from scratch by today's code."""
    return start_spare_server(17)


def accounts(srv: PrivateServer) -> set[tuple[str, str]]:
    admin = MariaDBConnection(srv.admin_url(), pool_size=1)
    try:
        return {(u, h) for u, h in admin.fetchall("SELECT User, Host FROM mysql.global_priv")}
    finally:
        admin.dispose()


def login_fails(**params) -> str:
    with pytest.raises(mariadb.Error) as refused:
        mariadb.connect(connect_timeout=3, **params).close()
    return str(refused.value)


def test_a_new_server_has_only_kb_accounts(fresh_server):
    found = accounts(fresh_server)
    # the replication account appears with the first replica (`kb db start --replicas N`)
    assert {user for user, _ in found} == {*KB_ACCOUNTS, SYSTEM_ACCOUNT} - {REPLICATION_USER}
    admin = MariaDBConnection(fresh_server.admin_url(), pool_size=1)
    try:
        locked = admin.fetchall(
            "SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv WHERE User = ?", (SYSTEM_ACCOUNT,)
        )
    finally:
        admin.dispose()
    assert locked == [("1",)]  # JSON true: the owner of the system views cannot log in


@pytest.mark.parametrize("user", ["root", ""])
def test_password_less_logins_fail_over_tcp_and_the_socket(fresh_server, server, user):
    for srv in (fresh_server, server):
        assert "Access denied" in login_fails(user=user, password="", host="127.0.0.1", port=srv.port)
        assert "Access denied" in login_fails(user=user, password="", unix_socket=str(srv.socket_path))


def test_files_and_socket_are_out_of_other_users_reach(fresh_server):
    admin = MariaDBConnection(fresh_server.admin_url(), pool_size=1)
    try:
        assert admin.fetchall("SELECT @@secure_file_priv")[0][0].rstrip("/") == str(fresh_server.files_dir)
        with pytest.raises(Exception, match="secure-file-priv"):
            admin.fetchall("SELECT 1 INTO OUTFILE '/tmp/kb-outfile-probe'")
    finally:
        admin.dispose()
    for folder in (fresh_server.root, fresh_server.socket_path.parent, fresh_server.files_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_an_older_data_directory_is_mended_on_the_next_start(fresh_server, run_kb):
    admin = MariaDBConnection(fresh_server.admin_url(), pool_size=1)
    try:
        admin.execute("CREATE USER 'root'@'127.0.0.1'")  # what kb's bootstrap used to leave behind
        admin.execute("CREATE USER ''@'localhost'")
        admin.execute("CREATE USER 'bi_tool'@'127.0.0.1' IDENTIFIED BY 'a-real-password'")  # a user's own: kept
    finally:
        admin.dispose()
    assert mariadb.connect(user="root", password="", host="127.0.0.1", port=fresh_server.port).close() is None
    env = {"KB_HOME": str(fresh_server.root.parent), "KB_DATABASE__SERVER__PORT": str(fresh_server.port)}
    proc = run_kb("db", "start", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "removed 2 account(s) that needed no password (root@127.0.0.1, (anonymous)@localhost)" in proc.stdout
    assert "Access denied" in login_fails(user="root", password="", host="127.0.0.1", port=fresh_server.port)
    assert ("bi_tool", "127.0.0.1") in accounts(fresh_server)
