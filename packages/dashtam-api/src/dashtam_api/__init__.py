"""Dashtam API service and CLI.

The heavy parts (FastAPI, SQLAlchemy) load on first use, so ``dashtam --help`` stays fast::

    from dashtam_api import ApiSettings, create_app

    app = create_app(ApiSettings(database_url="sqlite+aiosqlite:///./var/dashtam.db"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dashtam_api.main import create_app
    from dashtam_api.problems import ProblemDetails
    from dashtam_api.registry import RouteRegistry, RouteSpec
    from dashtam_api.settings import ApiSettings

_LAZY = {
    "ApiSettings": "dashtam_api.settings",
    "ProblemDetails": "dashtam_api.problems",
    "RouteRegistry": "dashtam_api.registry",
    "RouteSpec": "dashtam_api.registry",
    "create_app": "dashtam_api.main",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dashtam_api' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ApiSettings",
    "ProblemDetails",
    "RouteRegistry",
    "RouteSpec",
    "__version__",
    "create_app",
]
