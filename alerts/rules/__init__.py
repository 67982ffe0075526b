"""The rule catalog PW-001..PW-019 (LEGAL-RULES.md §2), one module per rule.

A rule is a module `pwNNN_<what>.py` in this package defining `RULE`; the catalog is every such
module in the order of its number, so adding a rule is adding its module."""

import re
from importlib import import_module
from pkgutil import iter_modules

from permitwatch.alerts.rules.base import Rule

RULES: tuple[Rule, ...] = tuple(
    import_module(f"{__name__}.{name}").RULE
    for name in sorted(info.name for info in iter_modules(__path__) if re.fullmatch(r"pw\d{3}_\w+", info.name))
)
RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
