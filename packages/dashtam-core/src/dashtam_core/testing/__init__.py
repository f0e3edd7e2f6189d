"""The Dashtam provider conformance kit (install ``dashtam-core[testing]``).

Subclass the kit classes in a provider's tests::

    from dashtam_core.testing import ProviderIntegrationTests, ProviderUnitTests

    class TestAcmeUnit(ProviderUnitTests):
        plugin_module = "dashtam_provider_acme.plugin"

The pytest plugin (:mod:`dashtam_core.testing.pytest_plugin`, loaded through the ``pytest11``
entry point) fails any class that overrides a kit test without ``xfail(reason=...)``.
:mod:`dashtam_core.testing.fake` holds a :class:`FakeProvider` that passes the kit.
"""

from dashtam_core.testing.fake import (
    FAKE_API_KEY,
    FAKE_SPEC,
    FakeProvider,
    FakeSettings,
    fake_client,
)
from dashtam_core.testing.integration import ProviderIntegrationTests
from dashtam_core.testing.statements import StatementParserTests
from dashtam_core.testing.unit import ProviderUnitTests

__all__ = [
    "FAKE_API_KEY",
    "FAKE_SPEC",
    "FakeProvider",
    "FakeSettings",
    "ProviderIntegrationTests",
    "ProviderUnitTests",
    "StatementParserTests",
    "fake_client",
]
