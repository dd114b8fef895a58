"""The private MariaDB 11.8 and the command line around it."""

from __future__ import annotations

import re
import shlex

import numpy as np

from kb.cli.examples import EXAMPLES, commands_of
from kb.cli.main import build_parser
from kb.cli.sql_examples import joined_command


def test_db_status_reports_11_8(run_kb, server):
    proc = run_kb("db", "status")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"MariaDB 11\.8\.\d+", proc.stdout), proc.stdout
    assert f"127.0.0.1:{server.port}" in proc.stdout and "socket" in proc.stdout


def test_db_start_is_idempotent(run_kb, server):
    pid = server.status().pid
    proc = run_kb("db", "start")
    assert proc.returncode == 0, proc.stderr
    assert "is running" in proc.stdout
    assert server.status().pid == pid  # the same server, not a second one


def test_server_accepts_vector_column_with_vector_index(db):
    db.execute("CREATE TABLE v (id INT PRIMARY KEY, e VECTOR(4) NOT NULL, VECTOR INDEX (e) M=6 DISTANCE=cosine)")
    rows = [(i, np.asarray([i, 1, 0, 0], dtype="<f4").tobytes()) for i in range(1, 6)]
    with db.cursor() as cur:
        cur.executemany("INSERT INTO v VALUES (?, ?)", rows)
    probe = np.asarray([3, 1, 0, 0], dtype="<f4").tobytes()
    nearest = db.fetchall("SELECT id FROM v ORDER BY VEC_DISTANCE_COSINE(e, ?) LIMIT 1", (probe,))
    assert nearest == [(3,)]
    ddl = db.fetchall("SHOW CREATE TABLE v")[0][1]
    assert "VECTOR KEY" in ddl


def test_app_account_is_confined_to_its_database(server, project_settings):
    from kb.stores.connection import MariaDBConnection

    app = MariaDBConnection(server.app_url())
    try:
        grants = " ".join(row[0] for row in app.fetchall("SHOW GRANTS"))
    finally:
        app.dispose()
    assert f"`{project_settings.database.name}`.*" in grants
    assert "ON *.*" not in grants.replace("GRANT USAGE ON *.*", "")


def test_help_lists_commands_and_each_has_help(run_kb):
    top = run_kb("--help")
    assert top.returncode == 0
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in commands:
        assert name in top.stdout
        sub = run_kb(name, "--help")
        assert sub.returncode == 0 and "usage: kb " + name in sub.stdout, sub.stderr
        assert f"examples:\n  kb {name}" in sub.stdout, f"kb {name} --help shows no example"
        nested = commands[name]._subparsers
        if nested:
            for action in nested._group_actions[0].choices:
                leaf = run_kb(name, action, "--help")
                assert leaf.returncode == 0 and f"usage: kb {name} {action}" in leaf.stdout
                assert f"examples:\n  kb {name} {action}" in leaf.stdout, f"kb {name} {action} --help shows no example"


def test_every_help_example_is_a_command_line_the_parser_accepts():
    parser = build_parser()
    paths = [path for path, _ in commands_of(parser)]
    assert set(paths) == set(EXAMPLES), "every command has examples, and no example names a command that is gone"
    for path in paths:
        for example in EXAMPLES[path]:
            words = shlex.split(example)
            assert words[0] == "kb" and " ".join(words[1:]).startswith(path), (path, example)
            args = parser.parse_args(joined_command(words[1:]))  # exits (a test failure) on an unknown option
            assert callable(args.handler), example
