"""The HTTP API, its settings, and the command-line interface."""
