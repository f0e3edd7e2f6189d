"""Dashtam chase provider plugin."""
