"""A/B variants of the retrieval settings over HTTP: sticky per key, in the log, in `kb stats --by variant`."""

from __future__ import annotations

import secrets
import shutil

import httpx
import pytest
from serving import ServedKB, bearer

from kb.business_database.provisioning import DATA
from kb.config import ExperimentSettings
from kb.knowledge_base import KnowledgeBase
from kb.service.experiments import CONTROL, Experiments
from kb.service.keys import KeyStore
from kb.stores.connection import quote_identifier

VARIANT = {"name": "one-chunk", "share": 0.5, "retrieval": {"top_k": 1, "mode": "text"}}
QUESTION = {"question": "How many days do customers have to return a product?", "route": "documents"}


@pytest.fixture(scope="module")
def site(admin, admin_url, tmp_path_factory):
    name = f"kbtest_{secrets.token_hex(6)}"
    admin.execute(f"CREATE DATABASE {quote_identifier(name)} CHARACTER SET utf8mb4")
    work = tmp_path_factory.mktemp("experiments")
    shutil.copytree(DATA / "docs", work / "docs")
    config = {
        "database": {"url": admin_url.set(database=name).render_as_string(hide_password=False)},
        "router": {"selector": "offline"},
        "retrieval": {"top_k": 4},
        "serve": {"experiments": [VARIANT]},
    }
    kb = KnowledgeBase.from_config(config)
    kb.index_directory(work / "docs", progress=False)
    store = KeyStore(kb.connection)
    experiments = Experiments([ExperimentSettings(**VARIANT)])
    keys: dict[str, tuple[str, str]] = {}  # name -> (secret, expected variant)
    while len({v for _, v in keys.values()}) < 2 or len(keys) < 4:  # both groups, at least four keys
        made, secret = store.create(f"k{len(keys)}", collections=["*"], requests_per_minute=10000)
        keys[made.name] = (secret, experiments.assign(made.id)[0] or "")
    kb.close()
    server = ServedKB(config, work).wait_ready()
    try:
        yield {"server": server, "keys": keys, "config": config, "kb": KnowledgeBase.from_config(config)}
    finally:
        server.stop()
        admin.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")


def test_each_key_keeps_its_variant_and_every_answer_is_logged_with_it(site, run_kb, tmp_path):
    url = site["server"].url
    for name, (secret, expected) in site["keys"].items():
        seen = set()
        for _ in range(2):
            result = httpx.post(url + "/v1/query", json=QUESTION, headers=bearer(secret), timeout=60).json()
            seen.add(result["variant"])
            # the variant's settings are the ones used: one chunk, against the configured four
            assert len(result["sources"]) == (1 if expected == "one-chunk" else 4), (name, result["variant"])
        assert seen == {expected}, name
        chat = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "kb", "messages": [{"role": "user", "content": QUESTION["question"]}]},
            headers=bearer(secret),
            timeout=60,
        )
        assert chat.status_code == 200
    rows = site["kb"].connection.fetchall("SELECT asked_by, variant, kind FROM kb_query_log ORDER BY id")
    logged: dict[str, set[str]] = {}
    for asked_by, variant, _ in rows:
        logged.setdefault(asked_by, set()).add(variant)
    assert logged == {name: {expected} for name, (_, expected) in site["keys"].items()}
    assert {expected for _, expected in site["keys"].values()} == {"one-chunk", CONTROL}

    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: {site['config']['database']['url']}\n")
    out = run_kb("--config", str(config), "stats", "--by", "variant")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line.split() for line in out.stdout.splitlines()[1:]}
    per_key = 3  # two queries (one answered, one from the cache) and a chat turn
    for variant in ("one-chunk", CONTROL):
        keys = sum(1 for _, v in site["keys"].values() if v == variant)
        assert int(lines[variant][1]) == per_key * keys


def test_shares_that_add_up_to_more_than_one_are_refused(run_kb, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "serve:\n  experiments:\n"
        "    - {name: a, share: 0.7, retrieval: {top_k: 2}}\n"
        "    - {name: b, share: 0.6, retrieval: {mode: text}}\n"
    )
    out = run_kb("--config", str(config), "config", "show")
    assert out.returncode != 0 and "add up to more than 1" in out.stderr


def test_assignment_is_sticky_and_splits_by_the_shares():
    experiments = Experiments([ExperimentSettings(**VARIANT)])
    first = [experiments.assign(key_id)[0] for key_id in range(2000)]
    assert first == [experiments.assign(key_id)[0] for key_id in range(2000)]
    assert 0.45 < first.count("one-chunk") / 2000 < 0.55
    assert Experiments([]).assign(1) == (None, {})
