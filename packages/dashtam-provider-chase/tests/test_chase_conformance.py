"""The core's offline provider kit, run against the Chase plugin.

The statement-parser kit runs on each of the four fixtures in ``test_chase_plugin.py``.
"""

from __future__ import annotations

from dashtam_core.testing import ProviderUnitTests


class TestChaseUnitConformance(ProviderUnitTests):
    plugin_module = "dashtam_provider_chase.plugin"
