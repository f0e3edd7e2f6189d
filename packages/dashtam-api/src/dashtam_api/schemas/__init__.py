"""Pydantic models of the API's request and response bodies."""

from dashtam_api.schemas.providers import ProviderList, ProviderOut, provider_listing
from dashtam_api.schemas.system import HealthOut, ReadyOut

__all__ = ["HealthOut", "ProviderList", "ProviderOut", "ReadyOut", "provider_listing"]
