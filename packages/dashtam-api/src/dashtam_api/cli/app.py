"""The ``dashtam`` command line (placeholder replaced by the CLI module)."""


def main() -> None:
    """Entry point."""
