"""Configuration: file, environment overrides, profiles, and the error for each kind of mistake."""

from __future__ import annotations

import textwrap

import pytest
from conftest import ROOT

from kb.config import load_settings
from kb.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_and_file_values(tmp_path):
    path = write(
        tmp_path,
        """
        profile: ollama
        database:
          server: {port: 4000}
    """,
    )
    settings = load_settings(path, environ={})
    assert settings.profile == "ollama"
    assert settings.active_profile.llm.provider == "ollama"
    assert settings.database.server.port == 4000
    assert settings.home_path == tmp_path / ".kb"  # relative to the config file


def test_environment_overrides_any_key_with_types(tmp_path):
    path = write(tmp_path, "profile: local\n")
    settings = load_settings(
        path,
        environ={
            "KB_PROFILE": "openai_like",
            "KB_DATABASE__SERVER__PORT": "4100",
            "KB_PROFILES__OPENAI_LIKE__LLM__MODEL": "qwen2.5",
            "KB_VECTOR_STORE__HNSW_M": "8",
            "KB_TEST_DATABASE_URL": "ignored: not a configuration key",
        },
    )
    assert settings.profile == "openai_like"
    assert settings.database.server.port == 4100
    assert settings.active_profile.llm.model == "qwen2.5"
    assert settings.vector_store.hnsw_m == 8


def test_profile_in_file_merges_over_builtin(tmp_path):
    path = write(
        tmp_path,
        """
        profiles:
          openai:
            llm: {model: gpt-4.1}
    """,
    )
    settings = load_settings(path, environ={})
    assert settings.profiles["openai"].llm.model == "gpt-4.1"
    assert settings.profiles["openai"].llm.provider == "openai"  # kept from the built-in profile


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = write(tmp_path, "database:\n  ulr: mariadb://x\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert "database.ulr: unknown key" in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_key_from_environment_names_variable(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, ""), environ={"KB_DATABASE__PROT": "1"})
    assert "database.prot: unknown key" in str(err.value)
    assert "KB_DATABASE__PROT" in str(err.value)


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "database:\n  server:\n    port: lots\n"), environ={})
    message = str(err.value)
    assert "database.server.port" in message and "'lots'" in message and "integer" in message


def test_unknown_profile(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, ""), environ={"KB_PROFILE": "gemini"})
    assert "profile 'gemini' is not defined" in str(err.value)
    assert "ollama" in str(err.value)


def test_missing_api_key_for_openai_profile(tmp_path):
    settings = load_settings(write(tmp_path, ""), environ={"KB_PROFILE": "openai"})
    # load_settings reads the real process environment only for keys; make sure it is absent.
    settings.profiles["openai"].llm.api_key_env = "KB_TEST_SURELY_UNSET_KEY"
    settings.profiles["openai"].embedding.api_key_env = "KB_TEST_SURELY_UNSET_KEY"
    with pytest.raises(ConfigError) as err:
        settings.require_api_keys()
    assert "KB_TEST_SURELY_UNSET_KEY" in str(err.value)


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "database: [unclosed\n"), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})


# -- the same mistakes through the CLI: one line, non-zero status, no traceback -------------------


def assert_clean_error(proc, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kb: error: "), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_cli_unknown_key(run_kb, tmp_path):
    path = write(tmp_path, "vector_store:\n  hnsw: 8\n")
    assert_clean_error(run_kb("--config", str(path), "config", "show"), "vector_store.hnsw: unknown key")


def test_cli_bad_type_from_environment(run_kb):
    proc = run_kb("config", "show", env={"KB_DATABASE__SERVER__PORT": "eighty"})
    assert_clean_error(proc, "database.server.port", "KB_DATABASE__SERVER__PORT")


def test_cli_missing_api_key(run_kb):
    proc = run_kb("config", "check", env={"KB_PROFILE": "openai", "OPENAI_API_KEY": ""})
    assert_clean_error(proc, "OPENAI_API_KEY", "profile 'openai'")


def test_cli_kb_config_variable_chooses_file(run_kb, tmp_path):
    path = write(tmp_path, "profile: ollama\n")
    proc = run_kb("config", "show", env={"KB_CONFIG": str(path)})
    assert proc.returncode == 0, proc.stderr
    assert f"# from {path}; profile ollama" in proc.stdout


def test_cli_unreachable_database(run_kb):
    proc = run_kb(
        "config",
        "check",
        env={"KB_DATABASE__URL": "mariadb://kb:pw@127.0.0.1:9/kb", "KB_DATABASE__CONNECT_TIMEOUT": "2"},
    )
    assert_clean_error(proc, "cannot connect to MariaDB at 127.0.0.1:9", "database.url")


def test_cli_server_too_old(run_kb):
    """The machine's system MariaDB (10.11, no VECTOR type) is refused with the version named."""
    proc = run_kb("config", "check", env={"KB_DATABASE__URL": "mariadb://root@127.0.0.1:3306/test"})
    assert_clean_error(proc, "10.11", "no VECTOR type", "11.7")


def test_every_setting_is_documented_in_config_yaml():
    """config.yaml is the documented default: every key of the settings model appears in it."""
    import yaml
    from pydantic import BaseModel

    from kb.config import Settings

    document = yaml.safe_load((ROOT / "config.yaml").read_text())
    missing = []

    def walk(model, node, path):
        for name, field in model.model_fields.items():
            if not isinstance(node, dict) or name not in node:
                missing.append(".".join(path + [name]))
                continue
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(field.annotation, node[name], path + [name])

    walk(Settings, document, [])
    assert missing == []
    assert set(document["profiles"]) == set(Settings().profiles)  # every built-in profile is shown
    assert load_settings(ROOT / "config.yaml", environ={}).model_dump() == Settings().model_dump()  # the defaults


def test_cli_misspelt_top_level_variable(run_kb):
    proc = run_kb("config", "show", env={"KB_PROFLE": "openai"})
    assert_clean_error(proc, "KB_PROFLE is not a kb setting", "did you mean KB_PROFILE?")


def test_cli_unknown_profile_names_the_variable(run_kb):
    assert_clean_error(
        run_kb("config", "show", env={"KB_PROFILE": "nosuch"}),
        "profile 'nosuch' is not defined",
        "environment variable KB_PROFILE",
    )


def test_list_settings_from_the_environment():
    settings = load_settings({}, environ={"KB_SQL__TABLES": "[orders, returns]", "KB_INDEXING__INCLUDE": '["*.md"]'})
    assert settings.sql.tables == ["orders", "returns"] and settings.indexing.include == ["*.md"]


@pytest.mark.parametrize(
    "url, needle",
    [
        ("not a url", "must be a URL such as mariadb://"),
        ("mariadb://kb:p@ss:w@rd@127.0.0.1:3422/kb", "percent-encode those characters (@ is %40"),
        ("mariadb://kb:pa:ss@w@rd@127.0.0.1:3422/kb", "percent-encode"),
    ],
)
def test_cli_unreadable_database_url_shows_nothing_secret(run_kb, url, needle):
    proc = run_kb("config", "show", env={"KB_DATABASE__URL": url})
    assert_clean_error(proc, "database.url", needle, "KB_DATABASE__URL")
    assert url not in proc.stderr and "w@rd" not in proc.stderr  # no part of a password is echoed


def test_cli_config_show_masks_every_secret(run_kb):
    env = {
        "KB_DATABASE__URL": "mariadb://kb:db-secret@db.example:3306/kb",
        "KB_SQL__URL": "mariadb://reader:sql-secret@db.example:3306/shop",
        "KB_PROFILES__OPENAI__LLM__API_KEY": "sk-very-secret",
    }
    proc = run_kb("config", "show", env=env)
    assert proc.returncode == 0, proc.stderr
    for secret in ("db-secret", "sql-secret", "sk-very-secret"):
        assert secret not in proc.stdout
    assert "mariadb://reader:***@db.example:3306/shop" in proc.stdout and '"api_key": "***"' in proc.stdout


def test_config_show_into_a_closed_pipe_is_quiet(tmp_path):
    import subprocess

    from conftest import kb_command

    proc = subprocess.run(
        " ".join(kb_command()) + " config show | head -1", shell=True, capture_output=True, text=True, cwd=ROOT
    )
    assert proc.stdout.startswith("# from ") and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
