"""Where each setting comes from: ``KB_*`` environment overrides (and which variable set which key),
merging them over the file, and naming the source of a bad value in its error message.

Kept by hand rather than on pydantic-settings (``env_nested_delimiter="__"`` and a YAML source would
read the same variables): pydantic-settings silently ignores a misspelt ``KB_`` variable, and its
validation errors name the field, not the variable or file that set it; both are what a user needs to
fix a configuration (tests/test_config.py holds the messages). Checked with pydantic-settings 2.16.3
(``env_prefix="KB_"``, ``env_nested_delimiter="__"``, ``extra="forbid"``): ``KB_RETRIEVL__MODE=text``
and ``KB_PROFIL=text`` load the defaults without a word, and ``KB_RETRIEVAL__MOOD=text`` fails as
"retrieval.mood: Extra inputs are not permitted", with no variable named."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from kb.errors import ConfigError

ENV_PREFIX = "KB_"
ENV_CONFIG_FILE = "KB_CONFIG"
# KB_ variables that are not settings: the config file's path, the install script's venv, the tests' server.
NOT_SETTINGS = {ENV_CONFIG_FILE, "KB_VENV"}
NOT_SETTINGS_PREFIXES = ("KB_TEST_",)


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def env_overrides(environ: Mapping[str, str], top_level: set[str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Nested overrides from ``KB_*`` variables, and which variable set each dotted key; ``top_level``
    are the settings' top-level keys (to tell a misspelt variable from a setting)."""
    overrides: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in NOT_SETTINGS or name.startswith(NOT_SETTINGS_PREFIXES):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if "__" not in rest and rest not in top_level:
            import difflib

            known = [f"KB_{key.upper()}" for key in sorted(top_level)]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"top-level settings are {', '.join(known)}"
            raise ConfigError(
                f"{name} is not a kb setting ({hint}); nested keys take two underscores, e.g. KB_DATABASE__URL"
            )
        path = [part for part in rest.split("__")]
        if any(not part for part in path):
            raise ConfigError(f"{name}: empty key segment; use KB_SECTION__KEY, e.g. KB_DATABASE__URL")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, dict):
            value = raw  # a mapping's structure comes from the variable's name, not its value
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another KB_ variable setting {part!r}")
        node[path[-1]] = value
        origins[tuple(path)] = name
    return overrides, origins


def describe_error(error: Mapping[str, Any], origins: Mapping[tuple[str, ...], str], source: str) -> str:
    loc = tuple(str(part) for part in error["loc"])
    if not loc and "profile" in error.get("msg", ""):
        loc = ("profile",)  # the model-level check of the chosen profile: report where the choice came from
    dotted = ".".join(loc) or "(top level)"
    where = origins.get(loc) or next((var for key, var in origins.items() if loc[: len(key)] == key), None)
    if where is None and loc:  # a check across a section's keys: the variables that set any of them
        where = ", ".join(var for key, var in origins.items() if key[: len(loc)] == loc) or None
    where = f"environment {'variables' if where and ',' in where else 'variable'} {where}" if where else source
    if error["type"] == "extra_forbidden":
        return f"{dotted}: unknown key (from {where}); remove it or check its spelling"
    if error["type"] == "missing":
        return f"{dotted}: required key is missing (from {where})"
    given = error.get("input")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if isinstance(given, (str, int, float, bool)) and error["type"] != "value_error":
        return f"{dotted}: {message}, got {given!r} (from {where})"
    return f"{dotted}: {message} (from {where})"
