"""The ``dashtam`` command line (entry point :func:`dashtam_api.cli.app.main`)."""
