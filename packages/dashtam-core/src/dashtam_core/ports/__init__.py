"""Ports: ``typing.Protocol`` interfaces named by role; adapters implement them."""
