"""One error root: every exception permitwatch defines is a `PermitwatchError` (so each face maps it
in one place), except the two that are control flow, not errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from permitwatch.models.errors import NotFound, PermitwatchError

CONTROL_FLOW = {"Terminated", "_Poisoned"}


def defined_exceptions() -> list[type[BaseException]]:
    found = []
    names = []
    for part in ("models", "alerts", "streams", "api"):
        package = importlib.import_module(f"permitwatch.{part}")
        names += [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    for name in names:
        loaded = importlib.import_module(name)
        found += [cls for _, cls in inspect.getmembers(loaded, inspect.isclass)
                  if issubclass(cls, BaseException) and cls.__module__ == loaded.__name__]
    return found


def test_every_exception_permitwatch_defines_has_the_one_root():
    exceptions = defined_exceptions()
    assert len(exceptions) > 15
    strays = [f"{cls.__module__}.{cls.__name__}" for cls in exceptions
              if not issubclass(cls, PermitwatchError) and cls.__name__ not in CONTROL_FLOW]
    assert strays == []


def test_no_referral_is_a_named_not_found_not_a_key_error():
    from permitwatch.alerts.referrals import NoReferral

    assert issubclass(NoReferral, NotFound) and not issubclass(NoReferral, LookupError)


def test_settings_variables_a_user_can_get_wrong_are_a_message_not_a_traceback(monkeypatch, capsys, tmp_path):
    from permitwatch.api.cli import main
    from permitwatch.streams.settings import Settings

    monkeypatch.setenv("PERMITWATCH_CALENDARS", "2027.json, extra.json")
    assert [path.name for path in Settings().calendars] == ["2027.json", "extra.json"]
    monkeypatch.setenv("PERMITWATCH_CALENDARS", "missing-2027.json")
    assert main(["run", "--data-dir", str(tmp_path)]) == 2
    assert "missing-2027.json" in capsys.readouterr().err
    monkeypatch.delenv("PERMITWATCH_CALENDARS")
    monkeypatch.setenv("PERMITWATCH_PORT", "abc")
    assert main(["run", "--data-dir", str(tmp_path)]) == 2
    assert "settings: port" in capsys.readouterr().err
