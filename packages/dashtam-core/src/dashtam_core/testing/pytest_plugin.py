"""The Dashtam pytest plugin (entry point ``pytest11``: ``dashtam``).

It adds the ``slow`` marker and enforces the conformance kit's anti-tamper rule: a test class
deriving from a kit base class (:class:`~dashtam_core.testing.ProviderUnitTests`,
:class:`~dashtam_core.testing.ProviderIntegrationTests`,
:class:`~dashtam_core.testing.StatementParserTests`) may override a kit ``test_*`` method only
when the override is marked ``@pytest.mark.xfail(reason=...)``. Any other override (including
``test_x = None`` to hide a test, or a class-level ``skip``/``skipif`` mark) adds a failing
``kit-integrity`` item to the run.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator, Iterator
from typing import Any

import pytest

#: Class attribute marking a kit base class (set in the class body of each kit class).
KIT_MARKER = "__dashtam_kit_base__"


def is_kit_class(cls: type) -> bool:
    """True for the kit's own base classes (not their subclasses)."""
    return bool(cls.__dict__.get(KIT_MARKER, False))


def _kit_tests(cls: type) -> Iterator[tuple[type, str, Any]]:
    for base in cls.__mro__:
        if not is_kit_class(base):
            continue
        for name, value in base.__dict__.items():
            if name.startswith("test") and callable(value):
                yield base, name, value


def _owner(cls: type, name: str) -> type | None:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass
    return None


def _xfail_reason(obj: Any) -> str:
    for mark in getattr(obj, "pytestmark", []) or []:
        if getattr(mark, "name", "") == "xfail":
            reason = mark.kwargs.get("reason") or ""
            return str(reason).strip()
    return ""


def tampered_tests(cls: type) -> list[str]:
    """Names of kit tests ``cls`` overrides without ``xfail(reason=...)``, with a why."""
    problems: list[str] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        if is_kit_class(klass):
            break
        marks = klass.__dict__.get("pytestmark", [])
        for mark in marks if isinstance(marks, list) else [marks]:
            if getattr(mark, "name", "") in {"skip", "skipif"}:
                problems.append(
                    f"@pytest.mark.{mark.name} on {klass.__name__} hides every kit test "
                    "(mark single tests xfail(reason=...) instead)"
                )
    for base, name, _original in _kit_tests(cls):
        if name in seen:
            continue
        seen.add(name)
        owner = _owner(cls, name)
        if owner is None or is_kit_class(owner):
            continue
        override = owner.__dict__[name]
        if not callable(override):
            problems.append(f"{name} (hidden by {owner.__name__}; kit class {base.__name__})")
        elif not _xfail_reason(override):
            problems.append(
                f"{name} (overridden in {owner.__name__} without "
                f"@pytest.mark.xfail(reason=...); kit class {base.__name__})"
            )
    return problems


class KitIntegrityItem(pytest.Item):
    """A test that fails, listing the kit tests a class tampers with."""

    def __init__(self, *, problems: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problems = problems

    def runtest(self) -> None:
        """Always fails: the class weakened the conformance kit."""
        raise KitTamperError(self.problems)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        """A readable message instead of a traceback."""
        if isinstance(excinfo.value, KitTamperError):
            lines = "\n  ".join(self.problems)
            return (
                "conformance kit tests may only be overridden when marked "
                f"@pytest.mark.xfail(reason=...):\n  {lines}"
            )
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """Where the offending class lives."""
        return self.path, None, self.name


class KitTamperError(Exception):
    """Raised by :class:`KitIntegrityItem`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    """Append a failing ``kit-integrity`` item after a tampering test class."""
    result = yield
    if not inspect.isclass(obj) or is_kit_class(obj) or not collector.istestclass(obj, name):
        return result
    if not any(is_kit_class(base) for base in obj.__mro__):
        return result
    problems = tampered_tests(obj)
    if not problems:
        return result
    item = KitIntegrityItem.from_parent(collector, name=f"{name}::kit-integrity", problems=problems)
    if result is None:
        return [item]
    if isinstance(result, list):
        return [*result, item]
    return [result, item]


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers the kit uses."""
    config.addinivalue_line("markers", "slow: a slow test (deselect with -m 'not slow')")


__all__ = [
    "KIT_MARKER",
    "KitIntegrityItem",
    "KitTamperError",
    "is_kit_class",
    "pytest_configure",
    "pytest_pycollect_makeitem",
    "tampered_tests",
]
