"""What an installed permitwatch carries: the tests run on an editable install, which reads the
source tree, so a file left out of the package would only be missed on a real install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_the_console_and_the_offline_docs_assets(tmp_path):
    # Built from a copy: an in-tree build leaves build/ and egg-info behind in the work tree.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("models", "alerts", "streams", "api"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("permitwatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = {p.relative_to(ROOT).as_posix() for p in (ROOT / "api" / "static").iterdir()}
    console = {p.relative_to(ROOT).as_posix() for p in (ROOT / "api" / "console").iterdir()}
    assert static | console <= names, sorted((static | console) - names)
