"""``ProviderRegistry``: the single source of truth for installed providers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from dashtam_core.errors import ConfigurationError, NotFound
from dashtam_core.plugins.spec import ProviderSpec


class DuplicateProviderError(ConfigurationError):
    """Two distributions registered the same slug."""

    code = "duplicate_provider"


@dataclass(frozen=True, slots=True)
class RegisteredProvider:
    """A spec plus where it came from."""

    spec: ProviderSpec
    distribution: str
    version: str
    entry_point: str


class ProviderRegistry:
    """Providers by slug; rejects duplicates, naming both distributions."""

    def __init__(self) -> None:
        self._providers: dict[str, RegisteredProvider] = {}

    def add(
        self,
        spec: ProviderSpec,
        *,
        distribution: str = "unknown",
        version: str = "0",
        entry_point: str = "",
    ) -> None:
        """Register ``spec``; raise :class:`DuplicateProviderError` on a slug clash."""
        existing = self._providers.get(spec.slug)
        if existing is not None:
            raise DuplicateProviderError(
                f"provider slug {spec.slug!r} registered twice: by {existing.distribution} "
                f"and by {distribution}"
            )
        self._providers[spec.slug] = RegisteredProvider(spec, distribution, version, entry_point)

    def get(self, slug: str) -> RegisteredProvider:
        """Return the provider or raise :class:`NotFound`."""
        try:
            return self._providers[slug]
        except KeyError:
            raise NotFound(f"no provider {slug!r} is installed") from None

    def __contains__(self, slug: object) -> bool:
        return slug in self._providers

    def __iter__(self) -> Iterator[RegisteredProvider]:
        return iter(sorted(self._providers.values(), key=lambda p: p.spec.slug))

    def __len__(self) -> int:
        return len(self._providers)

    def slugs(self) -> list[str]:
        """Sorted slugs."""
        return sorted(self._providers)


__all__ = ["DuplicateProviderError", "ProviderRegistry", "RegisteredProvider"]
