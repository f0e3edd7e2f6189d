"""``scaffold_provider``: every auth type generates a package that passes the kit as is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dashtam_core.domain.connection import AuthType
from dashtam_core.errors import Conflict, ValidationError
from dashtam_core.scaffold import ProviderNames, scaffold_provider


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DASHTAM_"))}
    env.update(extra)
    return env


def run_generated_tests(package: Path, python: str = sys.executable, **env: str) -> dict[str, int]:
    """Run the generated package's own test suite; return the junit counters."""
    report = package / "report.xml"
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=package,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    return {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}


@pytest.mark.parametrize(
    ("auth", "files", "min_passed"),
    [
        (AuthType.API_KEY, ["client.py", "sandbox.py"], 20),
        (AuthType.OAUTH2, ["client.py", "sandbox.py"], 24),
        (AuthType.FILE_IMPORT, ["client.py"], 9),
    ],
)
def test_scaffolded_package_passes_the_kit(
    tmp_path: Path, auth: AuthType, files: list[str], min_passed: int
) -> None:
    package = scaffold_provider("acme", auth, tmp_path)
    assert package == tmp_path / "dashtam-provider-acme"
    source = package / "src" / "dashtam_provider_acme"
    for name in ["__init__.py", "plugin.py", "settings.py", "py.typed", *files]:
        assert (source / name).is_file(), name
    pyproject = (package / "pyproject.toml").read_text()
    assert '[project.entry-points.dashtam]\nacme = "dashtam_provider_acme.plugin"' in pyproject
    assert 'build-backend = "hatchling.build"' in pyproject
    assert "__" not in (source / "plugin.py").read_text().replace("__future__", "").replace(
        "__init__", ""
    ), "a placeholder was left unfilled"
    tests = (package / "tests" / "test_conformance.py").read_text()
    assert "ProviderUnitTests" in tests
    counts = run_generated_tests(package, PYTHONPATH=str(package / "src"))
    assert counts["failures"] == 0
    assert counts["errors"] == 0
    assert counts["tests"] - counts["skipped"] >= min_passed, counts


def test_names_are_validated_and_spelled_consistently(tmp_path: Path) -> None:
    names = ProviderNames.from_name("acme-bank")
    assert (names.slug, names.dist, names.package, names.class_prefix, names.env) == (
        "acme_bank",
        "dashtam-provider-acme-bank",
        "dashtam_provider_acme_bank",
        "AcmeBank",
        "ACME_BANK",
    )
    for bad in ["", "Acme", "1acme", "acme bank", "acme--bank", "acme-", "../acme"]:
        with pytest.raises(ValidationError):
            scaffold_provider(bad, AuthType.API_KEY, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    package = scaffold_provider("acme", AuthType.API_KEY, tmp_path)
    marker = package / "pyproject.toml"
    marker.write_text("mine")
    with pytest.raises(Conflict):
        scaffold_provider("acme", AuthType.FILE_IMPORT, tmp_path)
    assert marker.read_text() == "mine"


def test_settings_prefix_and_module_names_follow_the_slug(tmp_path: Path) -> None:
    package = scaffold_provider("acme-bank", AuthType.OAUTH2, tmp_path)
    settings = (package / "src" / "dashtam_provider_acme_bank" / "settings.py").read_text()
    assert 'env_prefix="DASHTAM_ACME_BANK_"' in settings
    assert "class AcmeBankSettings(BaseSettings)" in settings
    counts = run_generated_tests(package, PYTHONPATH=str(package / "src"))
    assert counts["failures"] == counts["errors"] == 0


@pytest.mark.slow
def test_installed_package_is_discovered_and_green(tmp_path: Path) -> None:
    """The real thing: a fresh venv, the scaffolded package installed, its tests, `dashtam plugins`.

    Third-party dependencies come from the workspace venv (a ``.pth`` file), so the
    install needs no network; the new package is built and installed by ``uv pip``.
    """
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    package = scaffold_provider("acme", AuthType.API_KEY, tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    workspace_site = sysconfig.get_paths()["purelib"]
    Path(site, "_dashtam_workspace.pth").write_text(
        f"import site; site.addsitedir({workspace_site!r})\n"
    )
    installed = subprocess.run(
        [uv, "pip", "install", "--offline", "--no-deps", "-q", "-p", str(python), str(package)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=clean_env(),
    )
    if installed.returncode != 0 and "offline" in installed.stderr.lower():
        pytest.skip(f"uv could not build offline: {installed.stderr[-300:]}")
    assert installed.returncode == 0, installed.stderr
    listed = subprocess.run(
        [python, "-c", "from dashtam_api.cli.app import main; main()", "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_env(COLUMNS="200"),
    )
    assert listed.returncode == 0, listed.stderr
    assert "acme" in listed.stdout
    assert "dashtam-provider-acme" in listed.stdout
    counts = run_generated_tests(package, python=str(python))
    assert counts["failures"] == counts["errors"] == 0
    assert counts["tests"] - counts["skipped"] >= 20
