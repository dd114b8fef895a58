"""Hostile but fair input: each fault a probe of kb found, through the Python API or the CLI.

Items of the hardening issue tested elsewhere: 1 (tests/test_server_security.py), 5 (the write
window, tests/test_lexical_consistency.py), 6, 8, 9, 13, 14 (tests/test_config.py).
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import mariadb
import pytest
from helpers import write_text_pdf
from scripted_llm import ScriptedLLM

from kb import KnowledgeBase
from kb.errors import KBError
from kb.stores.errors import DatabaseUnavailable


def kb_for(db_url, embed, llm=None, **sections) -> KnowledgeBase:
    config = {"database": {"url": db_url.render_as_string(hide_password=False)}, **sections}
    return KnowledgeBase.from_config(config, embed_model=embed, llm=llm)


def cli_env(db_url, **extra: str) -> dict[str, str]:
    return {"KB_DATABASE__URL": db_url.render_as_string(hide_password=False), **extra}


GOOD = "Customers may return any item within 30 days of delivery for a full refund.\n"


# -- 2, 3, 4, 19: one bad file fails alone, with its reason --------------------------------------
def test_a_huge_text_without_breaks_is_indexed_with_the_fallback_splitter(db_url, local_embed, tmp_path):
    (tmp_path / "good.md").write_text(GOOD)
    (tmp_path / "wall.txt").write_text(("word" * 40 + " ") * 30_000)  # ~5 MB, no sentence or line break
    kb = kb_for(db_url, local_embed, indexing={"max_file_mb": 20})
    report = kb.index_directory(tmp_path, progress=False)
    assert report.failed == [] and set(report.added) == {"good.md", "wall.txt"}
    assert kb.vector_store.count() > 100  # the wall was cut into token windows, not dropped


def test_files_over_the_size_limit_are_reported_not_read(db_url, local_embed, tmp_path, run_kb):
    (tmp_path / "good.md").write_text(GOOD)
    (tmp_path / "big.txt").write_text("A sentence of the big file.\n" * 60_000)  # 1.7 MB
    proc = run_kb("index", str(tmp_path), env=cli_env(db_url, KB_INDEXING__MAX_FILE_MB="1"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "FAILED big.txt: 1.6 MB is over indexing.max_file_mb (1 MB)" in proc.stdout
    assert "1 added" in proc.stdout


def test_front_matter_longer_than_a_chunk_stays_out_of_the_chunk_text(db_url, local_embed, tmp_path):
    long_value = " ".join(f"keyword{i}" for i in range(700))
    (tmp_path / "tagged.md").write_text(f"---\ntitle: Tagged\nkeywords: {long_value}\n---\n{GOOD}")
    kb = kb_for(db_url, local_embed, indexing={"chunk_size": 256, "chunk_overlap": 20})
    report = kb.index_directory(tmp_path, progress=False)
    assert report.failed == [] and report.added == ["tagged.md"]
    (node,) = kb.vector_store.get_nodes()
    assert node.metadata["keywords"] == long_value  # kept as metadata
    assert "keyword699" not in node.get_content(metadata_mode="embed")  # not in the embedded text


def test_a_yaml_alias_bomb_fails_that_file_only(db_url, local_embed, tmp_path):
    bomb = "---\na: &a [x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
    (tmp_path / "bomb.md").write_text(bomb + "---\nBody.\n")
    (tmp_path / "good.md").write_text(GOOD)
    kb = kb_for(db_url, local_embed)
    report = kb.index_directory(tmp_path, progress=False)
    assert report.added == ["good.md"]
    (failure,) = report.failed
    assert failure.path == "bomb.md" and "front matter too large" in failure.reason


def test_a_corrupt_pdf_has_one_clean_reason(db_url, local_embed, tmp_path, run_kb):
    write_text_pdf(tmp_path / "fine.pdf", ["Warranty: every machine carries a two year warranty."], title="W")
    data = (tmp_path / "fine.pdf").read_bytes()
    (tmp_path / "corrupt.pdf").write_bytes(data[: len(data) // 2] + b"\x00garbage" * 50)
    proc = run_kb("index", str(tmp_path), env=cli_env(db_url))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "FAILED corrupt.pdf" in x)
    assert "RetryError" not in line and "Future" not in line and "PDF" in line
    assert "Ignoring wrong pointing object" not in proc.stderr and proc.stderr.count("\n") < 3


def test_hostile_files_never_stop_the_good_ones(db_url, local_embed, tmp_path):
    """Fuzz-style: generated hostile files among good ones; the good ones are always indexed and
    every bad one is listed with a reason."""
    rng = random.Random(7)
    good = {}
    for i in range(6):
        name = f"good{i}.md"
        good[name] = f"# Note {i}\n\nThe code word for note {i} is zebra{i}.\n"
        (tmp_path / name).write_text(good[name])
    hostile = {
        "binary.txt": bytes(rng.randrange(256) for _ in range(4096)),
        "latin1.md": "na\xefve caf\xe9 \xe0 la cr\xe8me".encode("latin-1"),
        "utf16.txt": "text in UTF-16".encode("utf-16"),
        "bom_only.md": b"\xef\xbb\xbf",
        "truncated.pdf": b"%PDF-1.7\n1 0 obj <<",
        "zip_named.docx": b"PK\x03\x04" + bytes(200),
        "bad_yaml.md": b"---\ntitle: [unclosed\n---\nBody text here.\n",
        "deep_yaml.md": b"---\nx: " + b"[" * 5000 + b"]" * 5000 + b"\n---\nBody text here.\n",
        "bad.json": b'{"a": ',
        "html_soup.html": b"<html><body>" + b"<div>" * 20000 + b"</body>",
    }
    for name, data in hostile.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "odd name\twith tab.md").write_text("Tab names are allowed: the word is quokka.\n")
    kb = kb_for(db_url, local_embed)
    report = kb.index_directory(tmp_path, progress=False)
    assert set(good) | {"odd name\twith tab.md"} <= set(report.added)
    reasons = {f.path: f.reason for f in report.failed}
    assert set(reasons) | set(report.added) == set(good) | set(hostile) | {"odd name\twith tab.md"}
    assert {"binary.txt", "latin1.md", "utf16.txt", "bom_only.md", "truncated.pdf", "zip_named.docx"} <= set(reasons)
    assert all(reason and "Traceback" not in reason and len(reason) < 300 for reason in reasons.values())
    found = kb.retrieve("zebra3", mode="text", top_k=1)
    assert found and found[0].node.metadata["file_path"] == "good3.md"


def test_a_second_index_run_on_the_same_folder_is_refused_while_one_runs(db_url, local_embed, tmp_path):
    (tmp_path / "good.md").write_text(GOOD)
    kb = kb_for(db_url, local_embed)
    store = kb.vector_store
    name = f"kb_index:{store.connection.url.database}.{store.table_name}:{tmp_path.resolve()}"
    with store.connection.named_lock(name, 0) as held:  # what a running `kb index` holds
        assert held
        with pytest.raises(KBError, match="another kb index is indexing .* right now; wait for it to finish"):
            kb.index_directory(tmp_path, progress=False)
    assert kb.index_directory(tmp_path, progress=False).added == ["good.md"]


# -- 7: token counts per call -------------------------------------------------------------------
def test_concurrent_queries_count_their_own_tokens(db_url, local_embed, tmp_path):
    (tmp_path / "policy.md").write_text(GOOD)
    llm = ScriptedLLM(lambda prompt: "Thirty days. " * (3 if "short" in prompt else 40))
    kb = kb_for(db_url, local_embed, llm=llm, router={"selector": "offline"})
    kb.index_directory(tmp_path, progress=False)
    questions = [f"What is the return window? ({'short' if i % 2 else 'long'} answer)" for i in range(8)]
    alone = {q: kb.query(q, route="documents").tokens for q in questions[:2]}
    assert alone[questions[0]]["out"] > 3 * alone[questions[1]]["out"] > 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda q: kb.query(q, route="documents"), questions))
    for question, answer in zip(questions, answers):
        assert answer.tokens == alone[questions[0] if "long" in question else questions[1]]


# -- 10, 11: out-of-range options and oversized questions ----------------------------------------
@pytest.mark.parametrize("top_k", ["-3", "0", "1001"])
def test_a_top_k_out_of_range_is_refused(db_url, run_kb, top_k):
    proc = run_kb("search", "returns", "--mode", "text", "--top-k", top_k, env=cli_env(db_url))
    assert proc.returncode != 0 and f"top_k must be between 1 and 1000, got {top_k}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_question_longer_than_the_model_takes_is_refused(db_url, local_embed):
    kb = kb_for(db_url, local_embed, llm=ScriptedLLM(["unused"]))
    with pytest.raises(KBError, match=r"the question is 100,000 characters long; questions are limited to"):
        kb.query("x" * 100_000)


# -- 15: a server that goes away -----------------------------------------------------------------
def test_sql_on_a_server_that_went_away_raises_database_unavailable(start_spare_server, local_embed):
    doomed_server = start_spare_server(23)
    admin = doomed_server.admin_url()
    conn = mariadb.connect(
        user=admin.username, password=admin.password, unix_socket=str(doomed_server.socket_path), autocommit=True
    )
    conn.cursor().execute("CREATE DATABASE biz")
    conn.cursor().execute("CREATE TABLE biz.orders (id INT PRIMARY KEY, total DECIMAL(8,2))")
    conn.cursor().execute("INSERT INTO biz.orders VALUES (1, 9.50), (2, 20.00)")
    conn.close()
    llm = ScriptedLLM(lambda p: "SELECT COUNT(*) AS n FROM orders" if "one SELECT statement" in p else "Two.")
    config = {
        "database": {"url": admin.set(database="kb").render_as_string(hide_password=False)},
        "sql": {"url": admin.set(database="biz").render_as_string(hide_password=False)},
    }
    kb = KnowledgeBase.from_config(config, embed_model=local_embed, llm=llm)
    assert kb.sql("How many orders?").rows == [{"n": 2}]
    doomed_server.stop()
    with pytest.raises(DatabaseUnavailable):
        kb.sql("How many orders?")


# -- a path that cannot be resolved is passed over, the run goes on ----------------------------------
def test_a_link_loop_in_the_folder_is_reported_and_the_run_goes_on(db_url, local_embed, tmp_path):
    (tmp_path / "good.md").write_text(GOOD)
    (tmp_path / "loop.md").symlink_to("loop.md")  # resolving it raised and failed the whole run
    (tmp_path / "deeper").mkdir()
    (tmp_path / "deeper" / "ring").symlink_to("../deeper/ring")
    kb = kb_for(db_url, local_embed)
    report = kb.index_directory(tmp_path, progress=False)
    assert report.added == ["good.md"] and report.ok
    assert {note.path: note.reason for note in report.skipped}["loop.md"].startswith("cannot be resolved")


# -- 16: names cannot forge output lines --------------------------------------------------------
def test_control_characters_in_names_are_escaped_in_output(db_url, local_embed, tmp_path, run_kb):
    (tmp_path / "evil\nFORGED: 0.99 secret.md").write_text("The kettle boils water in two minutes.\n")
    (tmp_path / "\x1b[2Jwiped\nFORGED.txt").write_bytes(b"\x00binary")
    dry = run_kb("index", str(tmp_path), "--dry-run", env=cli_env(db_url))
    assert "add evil\\nFORGED" in dry.stdout and not any(line.startswith("FORGED") for line in dry.stdout.splitlines())
    indexed = run_kb("index", str(tmp_path), env=cli_env(db_url))
    assert indexed.returncode == 1 and "FAILED \\x1b[2Jwiped\\nFORGED.txt" in indexed.stdout, indexed.stdout
    assert "\x1b" not in indexed.stdout and not any(line.startswith("FORGED") for line in indexed.stdout.splitlines())
    kb = kb_for(
        db_url,
        local_embed,
        llm=ScriptedLLM(lambda p: "Two minutes."),
        router={"selector": "offline"},
        sql={"enabled": False},
        vector_store={"table_name": "python_side_nodes"},
    )
    kb.chat("tea\ttime\nFORGED session", "How long does the kettle take?")
    search = run_kb("search", "kettle", "--mode", "text", env=cli_env(db_url))
    assert search.returncode == 0 and "evil\\nFORGED" in search.stdout
    assert not any(line.startswith("FORGED") for line in search.stdout.splitlines())
    sessions = run_kb("sessions", "list", env=cli_env(db_url))
    assert sessions.returncode == 0 and "tea\\ttime\\nFORGED session" in sessions.stdout
    assert not any(line.startswith("FORGED") for line in sessions.stdout.splitlines())


# -- 17: a folder that is gone can be forgotten -------------------------------------------------
def test_forget_drops_a_deleted_folder(db_url, db, tmp_path, run_kb):
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / "a.md").write_text(GOOD)
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "kept.md").write_text("The kettle boils water in two minutes.\n")
    env = cli_env(db_url)
    assert run_kb("index", str(gone), env=env).returncode == 0
    assert run_kb("index", str(kept), env=env).returncode == 0
    (gone / "a.md").unlink()
    gone.rmdir()
    refused = run_kb("index", str(gone), env=env)
    assert refused.returncode != 0 and f"kb index --forget {gone}" in refused.stderr
    forgot = run_kb("index", "--forget", str(gone), env=env)
    assert forgot.returncode == 0 and f"forgot {gone / 'a.md'}" in forgot.stdout
    assert forgot.stdout.endswith("1 document forgotten (their chunks are no longer searchable)\n")
    assert db.fetchall("SELECT DISTINCT ref_doc_id FROM kb_nodes") == [(str(kept / "kept.md") + "//default",)]


# -- 18: the read-only account's grants follow sql.tables ----------------------------------------
def test_narrowing_sql_tables_narrows_the_grants(db_url, business, project_settings, local_embed):
    from kb.business_database.provisioning import sync_reader_grants

    def can_read(table: str) -> bool:
        conn = mariadb.connect(
            user=business.username,
            password=business.password,
            unix_socket=business.query["unix_socket"],
            database=project_settings.sql.database,
        )
        try:
            conn.cursor().execute(f"SELECT COUNT(*) FROM {table}")
            return True
        except mariadb.Error as exc:
            assert "denied" in str(exc)
            return False
        finally:
            conn.close()

    llm = ScriptedLLM(["unused"])
    config = {"database": {"name": "kb_test_grants"}, "sql": {"tables": ["orders"]}}
    try:
        kb = KnowledgeBase.from_config(config, embed_model=local_embed, llm=llm)
        assert getattr(kb.sql_engine, "tables", kb.sql_engine) == ["orders"]
        assert can_read("orders") and not can_read("customers")
    finally:
        sync_reader_grants(project_settings)  # every table again, for the other tests
    assert can_read("customers")


def test_overlap_not_below_chunk_size_is_a_config_error(run_kb, tmp_path):
    proc = run_kb("config", "check", env={"KB_INDEXING__CHUNK_SIZE": "128", "KB_INDEXING__CHUNK_OVERLAP": "200"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "indexing: chunk_overlap (200) must be smaller than chunk_size (128)" in proc.stderr
    assert "KB_INDEXING__CHUNK_SIZE, KB_INDEXING__CHUNK_OVERLAP" in proc.stderr  # where the values came from
