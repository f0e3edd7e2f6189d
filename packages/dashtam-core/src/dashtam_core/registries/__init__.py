"""Registries: single sources of truth, each with a self-enforcing test."""
