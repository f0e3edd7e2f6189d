"""Plugin entry point (registered under the dashtam entry-point group)."""
