"""User-facing adapters: the HTTP API, the operator console and the command line."""
