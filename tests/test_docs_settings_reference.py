"""docs/reference/settings.md documents every ``DASHTAM_*`` setting with its real default.

The settings classes: ``CoreSettings``, ``ApiSettings`` and the ``settings_model`` of every
installed provider plugin. A row is ``| `DASHTAM_NAME` | default | meaning |``; a default written
as one backticked literal must equal the field's default, "unset" stands for ``None``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from dashtam_api import ApiSettings
from dashtam_core.plugins.manager import build_plugin_manager
from dashtam_core.settings import CoreSettings

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "settings.md"
ROW = re.compile(r"^\| `(?P<name>DASHTAM_[A-Z0-9_]+)` \| (?P<default>[^|]*) \|", re.MULTILINE)


def settings_models() -> list[type[BaseSettings]]:
    models: list[type[BaseSettings]] = [CoreSettings, ApiSettings]
    registry = build_plugin_manager().providers
    for slug in registry.slugs():
        models.append(registry.get(slug).spec.settings_model)
    return models


def variables() -> dict[str, Any]:
    """``DASHTAM_*`` variable -> the field's default, over every settings class."""
    out: dict[str, Any] = {}
    for model in settings_models():
        prefix = str(model.model_config.get("env_prefix", "")).upper()
        for name, field in model.model_fields.items():
            default = field.get_default(call_default_factory=True)
            out[prefix + name.upper()] = default
    return out


OTHER = "## Other variables"
ROOT = Path(__file__).resolve().parents[1]


def rows() -> dict[str, str]:
    """The settings tables (above "Other variables"): variable -> written default."""
    tables = PAGE.read_text("utf-8").partition(OTHER)[0]
    return {m["name"]: m["default"].strip() for m in ROW.finditer(tables)}


def other_variables() -> set[str]:
    """The ``DASHTAM_*`` names of the "Other variables" table."""
    _, sep, rest = PAGE.read_text("utf-8").partition(OTHER)
    assert sep, f"{PAGE.name} lost its {OTHER!r} section"
    return set(re.findall(r"`(DASHTAM_[A-Z0-9_]+)`", rest))


def same_default(written: str, actual: Any) -> bool:
    if written == "unset":
        return actual is None
    literal = re.fullmatch(r"`([^`]*)`", written)
    if literal is None:  # described in words: nothing to compare
        return actual is not None
    text = literal[1]
    if isinstance(actual, SecretStr):
        actual = actual.get_secret_value()
    if isinstance(actual, bool):
        return text == str(actual).lower()
    if isinstance(actual, Path):
        return Path(text) == actual
    if isinstance(actual, int | float | Decimal):
        try:
            return Decimal(text) == Decimal(str(actual))
        except InvalidOperation:
            return False
    if isinstance(actual, list):
        return text == "[]" and actual == []
    return text == str(actual)


def test_every_setting_is_documented() -> None:
    documented = rows()
    missing = sorted(set(variables()) - set(documented))
    assert not missing, f"settings missing from {PAGE.name}: {missing}"


def test_documented_defaults_are_the_real_ones() -> None:
    documented = rows()
    wrong = {
        name: (documented[name], default)
        for name, default in variables().items()
        if name in documented and not same_default(documented[name], default)
    }
    assert not wrong, f"{PAGE.name} states other defaults: {wrong}"


def test_no_invented_setting_in_the_tables() -> None:
    invented = sorted(set(rows()) - set(variables()))
    assert not invented, f"{PAGE.name} documents settings that do not exist: {invented}"


def test_other_variables_exist_in_the_code() -> None:
    sources = "".join(
        path.read_text("utf-8")
        for pattern in ("packages/*/src/**/*.py", "packages/*/tests/**/*.py")
        for path in ROOT.glob(pattern)
    )
    names = other_variables()
    assert len(names) >= 5
    unknown = sorted(name for name in names if name not in sources)
    assert not unknown, f"{PAGE.name} names variables no code reads: {unknown}"


@pytest.mark.parametrize(
    ("written", "actual", "same"),
    [
        ("unset", None, True),
        ("`./var/keys`", Path("var/keys"), True),
        ("`false`", False, True),
        ("`2.0`", 2, True),
        ("`8000`", 8001, False),
        ("`USD`", "EUR", False),
        ("unset", "x", False),
    ],
)
def test_default_comparison(written: str, actual: Any, same: bool) -> None:
    assert same_default(written, actual) is same
