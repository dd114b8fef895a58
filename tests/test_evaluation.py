"""``kb eval``: an operator's questions scored per retrieval setting, checked against values worked
out by hand on a corpus small enough to rank in one's head."""

from __future__ import annotations

import json
import math

import pytest

from kb.errors import KBError
from kb.operations.evaluation import hit_at, load_questions, mrr_at, ndcg_at, ranked_files

# Full-text (BM25) ranking on three files of the same length: "zebra" three times in zoo.md, once in
# farm.md, never in city.md, so a search for "zebra" ranks zoo.md first and farm.md second.
CORPUS = {
    "zoo.md": "# Zoo\n\nThe zebra eats. A zebra sleeps. Every zebra runs across the open plain today.\n",
    "farm.md": "# Farm\n\nThe cow eats. A goat sleeps. One zebra runs across the open field today.\n",
    "city.md": "# City\n\nThe bus stops. A tram waits. Every taxi runs across the busy square today.\n",
}
QUESTIONS = """
- q: zebra
  files: [farm.md]          # ranked 2nd: hit@1 0, hit@5 1, MRR 1/2, nDCG 1/log2(3)
- q: tram
  files: [city.md]          # ranked 1st: 1, 1, 1, 1
- q: goat
  files: [farm.md, zoo.md]  # farm.md 1st, zoo.md never: nDCG 1 / (1 + 1/log2(3))
- q: How many zebras were sold?
  route: database           # no file: scores the route only
"""


def test_the_metrics_match_hand_computed_values():
    files = ranked_files(["b", "b", None, "a", "c", "a"])
    assert files == ["b", "a", "c"]
    assert (hit_at(files, {"a"}, 1), hit_at(files, {"a"}, 5)) == (0.0, 1.0)
    assert mrr_at(files, {"a"}) == 0.5
    assert ndcg_at(files, {"a"}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at(files, {"a", "b"}) == pytest.approx(1.0)
    assert ndcg_at(files, {"c", "z"}) == pytest.approx((1 / 2) / (1 + 1 / math.log2(3)))
    assert mrr_at(files, {"z"}) == 0.0 and ndcg_at(files, {"z"}) == 0.0


def test_kb_eval_scores_each_setting_and_names_the_best(db_url, run_kb, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in CORPUS.items():
        (docs / name).write_text(text)
    questions = tmp_path / "questions.yaml"
    questions.write_text(QUESTIONS)
    env = {"KB_DATABASE__URL": db_url.render_as_string(hide_password=False), "KB_PROFILE": "tiny"}
    assert run_kb("index", str(docs), env=env).returncode == 0
    out = tmp_path / "eval.json"
    result = run_kb("eval", str(questions), "--modes", "text,dense", "--json", str(out), env=env)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["questions"] == 3
    text = next(s for s in figures["settings"] if s["setting"] == "text")
    assert text["hit_1"] == pytest.approx(2 / 3, abs=1e-4)
    assert text["hit_5"] == pytest.approx(1.0)
    assert text["mrr_10"] == pytest.approx((0.5 + 1 + 1) / 3, abs=1e-4)
    expected_ndcg = (1 / math.log2(3) + 1 + 1 / (1 + 1 / math.log2(3))) / 3
    assert text["ndcg_10"] == pytest.approx(expected_ndcg, abs=1e-4)
    assert {s["setting"] for s in figures["settings"]} == {"text", "dense"}
    assert figures["routes_scored"] == 1 and figures["route_accuracy"] in (0.0, 1.0)
    assert "(best)" in result.stdout and "retrieval:\n  mode: " in result.stdout
    assert f"mode: {figures['best'].split(',')[0]}" in figures["best_config"]


def test_the_default_grid_compares_dense_text_and_hybrid_fusions(db_url, run_kb):
    env = {"KB_DATABASE__URL": db_url.render_as_string(hide_password=False), "KB_PROFILE": "tiny"}
    from kb.business_database.provisioning import DATA

    assert run_kb("index", str(DATA / "docs"), env=env).returncode == 0
    result = run_kb("eval", str(DATA / "eval-questions.yaml"), env=env)
    assert result.returncode == 0, result.stderr
    for label in ("dense", "text", "hybrid, rrf", "hybrid, weighted, alpha 0.3", "hybrid, weighted, alpha 0.7"):
        assert label in result.stdout
    assert "routes:" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- q: no file named\n", "give the file"),
        ("just text", "expected a list"),
        ("- q: x\n  files: [a.md]\n  route: elsewhere\n", "route must be one of"),
        ("- {q: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_evaluation_file_is_a_clear_error(tmp_path, run_kb, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(KBError, match=message):
        load_questions(path)
    result = run_kb("eval", str(path))
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
