"""Scaffold a third-party provider package that passes the conformance kit as generated.

``dashtam new-provider acme --auth api_key`` calls :func:`scaffold_provider`, which writes::

    dashtam-provider-acme/
      pyproject.toml            # hatchling; [project.entry-points.dashtam] acme = ...
      README.md
      src/dashtam_provider_acme/{__init__,plugin,settings,client,sandbox}.py
      tests/test_conformance.py # subclasses of the kit classes
      tests/fixtures/sample.csv # file_import only

The templates live in ``dashtam_core/scaffold/templates/<auth>/`` with placeholders
``__SLUG__``, ``__PACKAGE__``, ``__DIST__``, ``__CLASS__``, ``__NAME__``, ``__ENV__``, ``__AUTH__``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from dashtam_core.domain.connection import AuthType
from dashtam_core.errors import Conflict, ValidationError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
TEMPLATE_SUFFIX = ".tmpl"


@dataclass(frozen=True, slots=True)
class ProviderNames:
    """Every spelling of a provider name the templates need."""

    slug: str  # acme_bank
    dist: str  # dashtam-provider-acme-bank
    package: str  # dashtam_provider_acme_bank
    class_prefix: str  # AcmeBank
    display: str  # Acme Bank
    env: str  # ACME_BANK

    @classmethod
    def from_name(cls, name: str) -> ProviderNames:
        """Validate ``name`` (lower-case letters, digits, ``-``/``_`` separators)."""
        cleaned = name.strip()
        if not NAME_PATTERN.match(cleaned):
            raise ValidationError(
                f"provider name {name!r} must be lower-case letters and digits, "
                "words separated by '-' or '_', starting with a letter"
            )
        words = re.split(r"[-_]", cleaned)
        slug = "_".join(words)
        return cls(
            slug=slug,
            dist="dashtam-provider-" + "-".join(words),
            package=f"dashtam_provider_{slug}",
            class_prefix="".join(w.capitalize() for w in words),
            display=" ".join(w.capitalize() for w in words),
            env=slug.upper(),
        )

    def render(self, text: str, auth: AuthType) -> str:
        """Fill the placeholders of one template."""
        for key, value in (
            ("__PACKAGE__", self.package),
            ("__SLUG__", self.slug),
            ("__DIST__", self.dist),
            ("__CLASS__", self.class_prefix),
            ("__NAME__", self.display),
            ("__ENV__", self.env),
            ("__AUTH__", auth.value),
        ):
            text = text.replace(key, value)
        return text


def _templates(folder: str) -> Traversable:
    return files("dashtam_core.scaffold").joinpath("templates", folder)


def _walk(root: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    found: list[tuple[tuple[str, ...], str]] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            found.extend(_walk(entry, (*prefix, entry.name)))
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            found.append(((*prefix, entry.name.removesuffix(TEMPLATE_SUFFIX)), entry.read_text()))
    return found


def _target(names: ProviderNames, parts: tuple[str, ...]) -> Path:
    """Where a template lands: ``tests/...`` and top-level files stay, modules go to src/."""
    if parts[0] == "tests" or parts[-1] in {"pyproject.toml", "README.md"}:
        return Path(*parts)
    return Path("src", names.package, *parts)


def scaffold_provider(name: str, auth: AuthType, dest: Path) -> Path:
    """Write the package ``dashtam-provider-<name>`` inside ``dest`` and return its path.

    Args:
        name: the provider slug (``acme`` or ``acme-bank``; hyphens become ``_`` in the slug).
        auth: ``oauth2``, ``api_key`` or ``file_import``; picks the templates.
        dest: an existing or new directory in which the package directory is created.

    Returns:
        The package directory.

    Raises:
        ValidationError: the name is not a valid slug.
        Conflict: the package directory already exists.
    """
    names = ProviderNames.from_name(name)
    auth = AuthType(auth)
    root = Path(dest) / names.dist
    if root.exists():
        raise Conflict(f"{root} already exists")
    rendered = [
        (_target(names, parts), names.render(text, auth))
        for parts, text in [*_walk(_templates("common")), *_walk(_templates(auth.value))]
    ]
    root.mkdir(parents=True)
    for relative, text in rendered:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "src" / names.package / "py.typed").write_text("")
    return root


__all__ = ["NAME_PATTERN", "ProviderNames", "scaffold_provider"]
