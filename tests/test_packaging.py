"""Packaging contracts: five wheels, a core that works without FastAPI, entry points, public API."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
PACKAGES = [
    "dashtam-core",
    "dashtam-api",
    "dashtam-provider-schwab",
    "dashtam-provider-alpaca",
    "dashtam-provider-chase",
]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not Path(UV).exists():
        pytest.fail("uv is required to build the wheels (make setup installs it)")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [UV, "build", "--all-packages", "--wheel", "-o", str(out), "--quiet"],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    found = {p.name.split("-0")[0].replace("_", "-"): p for p in out.glob("*.whl")}
    return found


def _metadata(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(zf.read(name).decode())
    return msg.get_all("Requires-Dist") or []


def test_build_yields_five_wheels(wheels: dict[str, Path]) -> None:
    assert sorted(wheels) == sorted(PACKAGES)


def test_core_wheel_does_not_require_fastapi(wheels: dict[str, Path]) -> None:
    requires = [r.lower() for r in _metadata(wheels["dashtam-core"])]
    assert not [r for r in requires if r.startswith(("fastapi", "starlette", "uvicorn"))]


def test_core_wheel_ships_migrations(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["dashtam-core"]) as zf:
        names = zf.namelist()
    assert any("adapters/sqlalchemy/migrations/env.py" in n for n in names)
    assert any("migrations/versions/0001_initial.py" in n for n in names)


@pytest.mark.slow
def test_core_installs_and_imports_without_fastapi(wheels: dict[str, Path], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [
            UV,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(py),
            str(wheels["dashtam-core"]),
            str(wheels["dashtam-provider-chase"]),
        ],
        check=True,
        timeout=600,
        env={**os.environ, "VIRTUAL_ENV": str(venv)},
    )
    code = (
        "import sys, dashtam_core, dashtam_core.sync, dashtam_core.adapters.sqlalchemy.migrate\n"
        "from dashtam_core.plugins.manager import build_plugin_manager\n"
        "assert 'fastapi' not in sys.modules\n"
        "import importlib.util; assert importlib.util.find_spec('fastapi') is None\n"
        "print(build_plugin_manager().providers.slugs())\n"
    )
    done = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['chase']"


@pytest.mark.parametrize("slug", ["schwab", "alpaca", "chase"])
def test_entry_point_resolves_to_its_spec(slug: str) -> None:
    (ep,) = [e for e in entry_points(group="dashtam") if e.name == slug]
    module = ep.load()
    specs = []
    module.register_providers(register=specs.append)
    assert [s.slug for s in specs] == [slug]
    assert ep.dist is not None
    assert ep.dist.name == f"dashtam-provider-{slug}"


PINNED_ALL = {
    "dashtam_core": [
        "Capability",
        "CoreSettings",
        "Credentials",
        "DashtamError",
        "Err",
        "LoadedPlugins",
        "Money",
        "Ok",
        "ParsedStatement",
        "ProviderAccount",
        "ProviderHolding",
        "ProviderSpec",
        "ProviderTransaction",
        "Result",
        "__version__",
        "build_plugin_manager",
        "uuid7",
    ],
    "dashtam_api": [
        "ApiSettings",
        "ProblemDetails",
        "RouteRegistry",
        "RouteSpec",
        "__version__",
        "create_app",
    ],
}


@pytest.mark.parametrize("module_name", sorted(PINNED_ALL))
def test_public_api_is_pinned_and_sorted(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    assert exported == PINNED_ALL[module_name]
    for name in exported:
        assert hasattr(module, name)


@pytest.mark.parametrize(
    "pkg", ["dashtam_provider_schwab", "dashtam_provider_alpaca", "dashtam_provider_chase"]
)
def test_provider_packages_export_a_sorted_all(pkg: str) -> None:
    module = importlib.import_module(pkg)
    assert list(module.__all__) == sorted(module.__all__)
    assert module.__all__, f"{pkg} exports nothing"


def test_import_dashtam_core_is_light() -> None:
    """``import dashtam_core`` loads no SQLAlchemy, pydantic-settings or HTTP client."""
    code = (
        "import sys, dashtam_core\n"
        "heavy = [m for m in ('sqlalchemy', 'pydantic_settings', 'httpx', 'fastapi') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
