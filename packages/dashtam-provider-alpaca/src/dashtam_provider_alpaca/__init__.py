"""Dashtam alpaca provider plugin."""
