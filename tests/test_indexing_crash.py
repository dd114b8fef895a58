"""A `kb index` killed with SIGKILL mid-run, then run again, ends exactly like one clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from conftest import ROOT, kb_command


def make_tree(root, n=300):
    for i in range(n):
        folder = root / f"part{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"doc{i:03d}.md").write_text(
            f"# Document {i}\n\nThis is document number {i} about topic {i % 17}. "
            f"It mentions product P{i % 23} and the year {2000 + i % 25}.\n\n"
            + " ".join(f"filler{i}_{j}" for j in range(40))
            + "\n"
        )


def env_for(db_url, table: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(
        {
            "KB_DATABASE__URL": db_url.render_as_string(hide_password=False),
            "KB_VECTOR_STORE__TABLE_NAME": f"{table}_nodes",
            "KB_INDEXING__KV_TABLE": f"{table}_kv",
            "KB_INDEXING__GROUP_SIZE": "16",
        }
    )
    return env


def index_run(db_url, tree, table) -> subprocess.CompletedProcess:
    """``kb index tree`` into ``table``'s store, run to the end."""
    return subprocess.run(
        [*kb_command(), "index", str(tree)],
        cwd=ROOT,
        env=env_for(db_url, table),
        capture_output=True,
        text=True,
        timeout=600,
    )


def stored(db, table):
    return set(db.fetchall(f"SELECT node_id, ref_doc_id, text, text_hash FROM {table}_nodes"))


def test_kill_9_mid_run_then_rerun_equals_a_clean_run(db, db_url, tmp_path):
    tree = tmp_path / "tree"
    make_tree(tree)
    proc = subprocess.Popen(
        [*kb_command(), "index", str(tree)],
        cwd=ROOT,
        env=env_for(db_url, "crash"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    written = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            written = db.fetchall("SELECT COUNT(*) FROM crash_nodes")[0][0]
        except Exception:
            written = 0  # the table does not exist yet
        if written >= 40:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed: make the tree bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = db.fetchall("SELECT COUNT(*) FROM crash_nodes")[0][0]
    assert 0 < partial < 300

    rerun = index_run(db_url, tree, "crash")
    assert rerun.returncode == 0, rerun.stderr
    clean = index_run(db_url, tree, "clean")
    assert clean.returncode == 0, clean.stderr

    assert stored(db, "crash") == stored(db, "clean")
    assert len(stored(db, "crash")) == 300
    # no duplicates, and the lexical side agrees with the chunks
    assert db.fetchall("SELECT COUNT(*), COUNT(DISTINCT ref_doc_id) FROM crash_nodes")[0] == (300, 300)
    assert db.fetchall("SELECT COUNT(*) FROM crash_nodes_lexical")[0][0] == 300
    assert db.fetchall("SELECT docs FROM crash_nodes_lexical_stats")[0][0] == 300
    # and the registry knows every file: a third run changes nothing
    again = index_run(db_url, tree, "crash")
    assert "0 added, 0 updated, 300 unchanged, 0 deleted, 0 failed" in again.stdout
