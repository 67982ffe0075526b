"""permitwatch: real-time e-supervision of administrative licensing (行政审批电子监察).

One package; its parts are the project's top-level folders, mapped under it by pyproject.toml:

- `permitwatch.models`: the contract as pydantic models (events, catalog, alerts, referrals, …)
- `permitwatch.alerts`: the pure core (legal clock, rules, case and city books, referrals)
- `permitwatch.streams`: the runtimes (embedded, Kafka) and what feeds them
- `permitwatch.api`: the HTTP API, the operator console and the command line

docs/architecture.md describes the layers and where a new rule, runtime or input format goes.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("permitwatch")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0.0.0"
