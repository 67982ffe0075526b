"""Input formats: files and feeds read as records, each becoming an event's JSON with its origin.
A new format goes here, as a reader yielding `readers.Record`s (see docs/architecture.md)."""
