"""The security adapter package: sorted ``__all__``, every name importable, lazy loading."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dashtam_core.adapters.security as security


def test_all_is_sorted_and_resolves() -> None:
    assert security.__all__ == sorted(security.__all__)
    for name in security.__all__:
        assert getattr(security, name) is not None
    with pytest.raises(AttributeError):
        _ = security.does_not_exist


def test_importing_one_name_does_not_load_every_library() -> None:
    code = (
        "import sys; from dashtam_core.adapters.security import CredentialVault; "
        "print(int('casbin' in sys.modules), int('zxcvbn' in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["0", "0"]
