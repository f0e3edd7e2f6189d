"""Root pytest configuration: shared fixtures for every package's tests."""

pytest_plugins = ["dashtam_core.testing.databases"]
