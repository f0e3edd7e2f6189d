"""The pluggy plugin system: hookspecs, the plugin manager and the provider registry."""
