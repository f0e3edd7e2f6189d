"""Dashtam schwab provider plugin."""
