"""Per-provider settings, and where sandbox mode points each provider.

In sandbox mode (``DASHTAM_SANDBOX=true``) the service mounts every provider's simulator at
``/sandbox/{slug}`` and builds that provider's settings with base URLs pointing at it.
:func:`sandbox_overrides` is the one place that knows those URLs.
"""

from __future__ import annotations

from typing import Any

from pydantic_settings import BaseSettings

from dashtam_core.plugins.registry import ProviderRegistry, RegisteredProvider


def sandbox_prefix(slug: str) -> str:
    """The mount path of ``slug``'s sandbox (``/sandbox/schwab``)."""
    return f"/sandbox/{slug}"


def sandbox_overrides(
    slug: str, settings_model: type[BaseSettings], public_base_url: str
) -> dict[str, Any]:
    """Settings overrides pointing provider ``slug`` at its sandbox under ``public_base_url``.

    Schwab and Alpaca get their documented base URLs; another provider whose settings model
    has a ``base_url`` field gets the sandbox root there; others get nothing.
    """
    root = public_base_url.rstrip("/") + sandbox_prefix(slug)
    if slug == "schwab":
        return {"api_base_url": f"{root}/trader/v1", "auth_base_url": f"{root}/v1/oauth"}
    if slug == "alpaca":
        return {"paper_base_url": root, "live_base_url": root}
    if "base_url" in settings_model.model_fields:
        return {"base_url": root}
    return {}


class ProviderConfigs:
    """Builds each provider's settings model once, on first use.

    Args:
        providers: the registered providers.
        sandbox: apply :func:`sandbox_overrides` to providers that ship a sandbox.
        public_base_url: the service's own base URL (where the sandboxes are mounted).
    """

    def __init__(self, providers: ProviderRegistry, *, sandbox: bool, public_base_url: str) -> None:
        self._providers = providers
        self._sandbox = sandbox
        self._base = public_base_url
        self._cache: dict[str, BaseSettings] = {}

    def overrides(self, provider: RegisteredProvider) -> dict[str, Any]:
        """The overrides applied to ``provider``'s settings (empty outside sandbox mode)."""
        spec = provider.spec
        if not (self._sandbox and spec.sandbox is not None):
            return {}
        return sandbox_overrides(spec.slug, spec.settings_model, self._base)

    def get(self, slug: str) -> BaseSettings:
        """The settings of provider ``slug`` (``NotFound`` if it is not installed)."""
        cached = self._cache.get(slug)
        if cached is None:
            provider = self._providers.get(slug)
            cached = provider.spec.settings_model(**self.overrides(provider))
            self._cache[slug] = cached
        return cached


__all__ = ["ProviderConfigs", "sandbox_overrides", "sandbox_prefix"]
