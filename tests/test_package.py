"""What an installed permitwatch carries: the tests run on an editable install, which reads the
source tree, so a file left out of the package would only be missed on a real install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_is_one_package_with_the_console_and_the_offline_docs_assets(tmp_path):
    """Installed, permitwatch is `permitwatch` alone in site-packages (no generic `api` or `models`
    to collide with another tool's), with the console and the offline docs assets."""
    # Built from a copy: an in-tree build leaves build/ and egg-info behind in the work tree.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("permitwatch", "models", "alerts", "streams", "api"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("permitwatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {name.split("/", 1)[0] for name in names if not name.startswith("permitwatch-")} == {"permitwatch"}
    assets = {f"permitwatch/{p.relative_to(ROOT).as_posix()}" for folder in ("static", "console")
              for p in (ROOT / "api" / folder).iterdir()}
    assert assets <= names, sorted(assets - names)
    assert {"permitwatch/__main__.py", "permitwatch/alerts/rules/base.py", "permitwatch/streams/kafka/stages.py"} <= names
