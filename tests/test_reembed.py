"""Changing embedding models without downtime (kb.ingest.reembedding): the offline model's index moved to
a second model (an OpenAI-compatible stand-in on loopback, word-hash vectors) while questions keep
being asked and files keep being indexed; a build killed with SIGKILL resumes; the old table stays
until --drop-old. Real MariaDB, the real offline embedding model, real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import kb_command
from scripted_llm import ScriptedLLM
from standins import WORD_HASH_DIM, openai_embeddings, serve

from kb.errors import KBError
from kb.ingest import reembedding
from kb.ingest.reembedding import REFRESH_S
from kb.knowledge_base import KnowledgeBase
from kb.stores.connection import table_exists

WORDS = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "harbor", "indigo", "jasper"]


def write_notes(folder: Path, count: int, start: int = 0) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(start, start + count):
        word = WORDS[i % len(WORDS)]
        (folder / f"note{i:03d}.md").write_text(
            f"# Note {i}\n\nThe vault number {i} is guarded by the {word} keeper, code {word}{i}.\n"
        )


def config_for(db_url, api_base: str, **extra) -> dict:
    return {
        "database": {"url": db_url.render_as_string(hide_password=False)},
        "sql": {"enabled": False},
        "router": {"selector": "offline"},
        "profiles": {
            "wordhash": {
                "llm": {"provider": "openai_like", "model": "unused", "api_base": f"{api_base}/v1"},
                "embedding": {
                    "provider": "openai_like",
                    "model": "wordhash-embed",
                    "api_base": f"{api_base}/v1",
                    "batch_size": 4,
                    "concurrency": 1,
                    "max_retries": 0,
                },
            }
        },
        **extra,
    }


def test_an_index_moves_to_another_model_while_questions_and_indexing_go_on(db_url, tmp_path, monkeypatch):
    # small batches and a small last pass, so that this small index is built in several unlocked passes
    monkeypatch.setattr(reembedding, "BATCH", 4)
    monkeypatch.setattr(reembedding, "FINAL_PASS_MAX", 2)
    docs = tmp_path / "docs"
    write_notes(docs, 40)
    with serve(openai_embeddings) as (api_base, standin):
        config = config_for(db_url, api_base)
        operator = KnowledgeBase.from_config(config, llm=ScriptedLLM(lambda prompt: "Written answer."))
        asker = KnowledgeBase.from_config(config, llm=ScriptedLLM(lambda prompt: "Written answer."))
        asked, failures, stop = [], [], threading.Event()
        try:
            assert operator.index_directory(docs, progress=False).chunks == 40
            assert operator.embed_model_name == "local:all-MiniLM-L6-v2"

            def keep_asking() -> None:  # another user of the same knowledge base, like a kb serve
                while not stop.is_set():
                    try:
                        answer = asker.query("Who guards vault number 17?", route="documents", mode="dense")
                        asked.append((time.monotonic(), asker.live_generation().model, answer))
                    except Exception as exc:
                        failures.append(repr(exc))

            thread = threading.Thread(target=keep_asking)
            thread.start()
            standin.delay_s = 0.05  # the build takes a while: questions and indexing overlap it
            indexed_during = []

            def progress(done: int, total: int) -> None:
                if done >= 8 and not indexed_during:  # a user indexes a new file in the middle of the build
                    write_notes(docs, 1, start=40)
                    indexed_during.append(operator.index_directory(docs, progress=False))

            report = operator.reembed("wordhash", progress=progress)
            switched_at = time.monotonic()
            time.sleep(REFRESH_S * 2.5)
            stop.set()
            thread.join()
        except BaseException:
            stop.set()
            operator.close()
            asker.close()
            raise
        try:
            assert failures == [], failures[:3]
            assert indexed_during and indexed_during[0].added == ["note040.md"]
            assert report.switched and report.previous.model == "local:all-MiniLM-L6-v2"
            assert report.live.model == "openai_like:wordhash-embed" and report.live.dim == WORD_HASH_DIM
            assert report.chunks == 41, "the chunk indexed during the build was caught up"
            before = [model for t, model, _ in asked if t < switched_at]
            after = [(model, a) for t, model, a in asked if t > switched_at + REFRESH_S * 1.1]
            assert before and set(before) <= {"local:all-MiniLM-L6-v2", "openai_like:wordhash-embed"}
            assert after and {model for model, _ in after} == {"openai_like:wordhash-embed"}
            requests_before = standin.requests
            answer = asker.query("Who guards vault number 17?", route="documents", mode="dense")
            assert standin.requests == requests_before + 1, "the question was embedded by the new model"
            assert answer.sources[0].metadata["file_name"] == "note017.md"
            found = asker.retrieve("vault number 40 code amber40", mode="dense", top_k=3)
            assert "note040.md" in {n.node.metadata["file_name"] for n in found}, "indexed during the build"
            # the incremental registry belongs to the knowledge base, not to one table of vectors
            assert len(operator.index_directory(docs, progress=False).unchanged) == 41
            assert operator.store_for(report.previous).count() == 41, "the old table is kept"
            assert operator.drop_old_generations() == ["kb_nodes"]
            with operator.connection.cursor() as cur:
                assert not table_exists(cur, "`kb_nodes`") and not table_exists(cur, "`kb_nodes_lexical`")
            assert asker.query("Who guards vault number 3?", route="documents", mode="hybrid").sources
        finally:
            operator.close()
            asker.close()


def test_an_engine_built_before_a_switch_answers_from_one_generation_after_it(db_url, tmp_path):
    """The router's selector embeds the question and hands that embedding to the retriever: both must be
    of the generation the engine was built for, or a question in flight during a switch is embedded by
    the new model and searched in the old table (a dimension mismatch)."""
    docs = tmp_path / "docs"
    write_notes(docs, 12)
    with serve(openai_embeddings) as (api_base, standin):
        config = config_for(db_url, api_base)
        kb = KnowledgeBase.from_config(config, llm=ScriptedLLM(lambda prompt: "Written answer."))
        try:
            assert kb.index_directory(docs, progress=False).chunks == 12
            engine = kb.as_query_engine()
            retriever = kb.as_retriever(mode="dense", top_k=3)
            report = kb.reembed("wordhash")
            assert report.switched and kb.live_generation(fresh=True).model == "openai_like:wordhash-embed"
            requests = standin.requests
            response = engine.query("Who guards vault number 7?")  # routed, then answered: the old generation
            assert response.metadata["route"] == "documents"
            assert response.source_nodes[0].node.metadata["file_name"] == "note007.md"
            hits = retriever.retrieve("Who guards vault number 7?")
            assert hits[0].node.metadata["file_name"] == "note007.md"
            assert standin.requests == requests, "the engines built before the switch never used the new model"
            fresh = kb.as_query_engine().query("Who guards vault number 7?")  # built after it: the new one
            assert fresh.source_nodes[0].node.metadata["file_name"] == "note007.md"
            assert standin.requests > requests
        finally:
            kb.close()


def test_a_killed_build_resumes_and_switching_back_reuses_the_kept_table(db_url, tmp_path, run_kb):
    docs = tmp_path / "docs"
    write_notes(docs, 100)
    with serve(openai_embeddings) as (api_base, standin):
        config = config_for(db_url, api_base)
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        kb = KnowledgeBase.from_config(config, llm=ScriptedLLM(lambda prompt: "Written answer."))
        try:
            kb.index_directory(docs, progress=False)
            env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
            env["KB_CONFIG"] = str(config_file)
            standin.delay_s = 0.2
            build = subprocess.Popen(
                [*kb_command(), "reembed", "--profile", "wordhash"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 120
            written = 1 + reembedding.BATCH // 4 + 3  # the dimension probe, one batch written, a bit more
            while standin.requests < written and time.monotonic() < deadline and build.poll() is None:
                time.sleep(0.05)
            assert build.poll() is None, build.communicate()
            build.send_signal(signal.SIGKILL)
            build.wait()
            time.sleep(standin.delay_s * 2)  # the request the build was waiting for is answered (and counted)
            record = kb.generations.read()
            assert record is not None and record.building is not None and record.live.table == "kb_nodes"
            partial = kb.store_for(record.building).count()
            assert partial == reembedding.BATCH, partial
            assert kb.live_generation(fresh=True).model == "local:all-MiniLM-L6-v2", "not switched by a dead build"
            assert kb.retrieve("vault number 5", mode="dense"), "still answering from the old table"

            standin.delay_s = 0.0
            texts_before = standin.texts
            done = run_kb("reembed", "--profile", "wordhash", env={"KB_CONFIG": str(config_file)})
            assert done.returncode == 0, done.stderr
            assert "(resumed)" in done.stdout and "kb reembed --drop-old" in done.stdout, done.stdout
            assert standin.texts - texts_before == 100 - partial, "only what the killed build had not copied"
            assert kb.live_generation(fresh=True).model == "openai_like:wordhash-embed"
            assert kb.store_for(kb.live_generation()).count() == 100

            again = run_kb("reembed", "--profile", "wordhash", env={"KB_CONFIG": str(config_file)})
            assert again.returncode == 0 and "nothing to do" in again.stdout

            # back to the offline model: its table was kept, so only changes are copied (none here)
            back = kb.reembed("local")
            assert back.switched and back.live.table == "kb_nodes" and back.resumed and back.embedded == 0
            assert kb.embed_model_name == "local:all-MiniLM-L6-v2"
        finally:
            kb.close()


def test_bad_reembed_requests_are_refused_with_what_to_do(db_url, tmp_path, run_kb):
    with serve(openai_embeddings) as (api_base, _standin):
        config = config_for(db_url, api_base)
        kb = KnowledgeBase.from_config(config, llm=ScriptedLLM(lambda prompt: "Written answer."))
        try:
            with pytest.raises(KBError, match="nothing is indexed yet"):
                kb.reembed("wordhash")
            write_notes(tmp_path / "docs", 3)
            kb.index_directory(tmp_path / "docs", progress=False)
            with pytest.raises(KBError, match="no profile 'nope'"):
                kb.reembed("nope")
        finally:
            kb.close()
        config_file = tmp_path / "config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        result = run_kb("reembed", env={"KB_CONFIG": str(config_file)})
        assert result.returncode != 0 and "give --profile NAME" in result.stderr and "Traceback" not in result.stderr
        # the configured model changed without kb reembed: refused, and the message says what to do
        changed = KnowledgeBase.from_config(
            {**config, "profile": "wordhash"}, llm=ScriptedLLM(lambda prompt: "Written answer.")
        )
        try:
            with pytest.raises(KBError, match="kb reembed --profile"):
                changed.retrieve("vault", mode="dense")
        finally:
            changed.close()
