"""Real tools the tests need, obtained from Debian when the machine lacks them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHE = Path(__file__).resolve().parent.parent / ".venv" / "tools"


def debian_binary(package: str, binary: str) -> str:
    """`binary` from PATH, else from Debian's `package`, unpacked (not installed: no root needed
    once the package lists exist). Skips, saying why, only when apt cannot provide it."""
    found = shutil.which(binary)
    if found:
        return found
    unpacked = CACHE / package / "usr" / "bin" / binary
    if unpacked.exists():
        return str(unpacked)
    if not shutil.which("apt-get"):
        pytest.skip(f"{binary} is not installed and this machine has no apt-get to fetch Debian's {package}")
    CACHE.mkdir(parents=True, exist_ok=True)
    download = ["apt-get", "download", "-q", package]
    done = subprocess.run(download, cwd=CACHE, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=300)
        done = subprocess.run(download, cwd=CACHE, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"cannot fetch Debian's {package} for {binary}: {done.stderr.strip()[-500:]}")
    deb = max(CACHE.glob(f"{package}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE / package)], check=True, timeout=300)
    deb.unlink()
    return str(unpacked)
