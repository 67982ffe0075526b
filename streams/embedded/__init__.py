"""The embedded runtime: the whole monitor in one process, state in one SQLite file."""
