"""Dashtam core: the financial data domain, sync engine, plugin system and conformance kit."""

from dashtam_core.domain.money import Money
from dashtam_core.errors import DashtamError
from dashtam_core.result import Err, Ok, Result

__version__ = "0.1.0"

__all__ = ["DashtamError", "Err", "Money", "Ok", "Result", "__version__"]
