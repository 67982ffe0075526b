"""Real tools the tests need, obtained from Debian when the machine lacks them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHE = Path(__file__).resolve().parent.parent / ".venv" / "tools"


def debian_package(package: str) -> Path:
    """Debian's `package` unpacked under .venv/tools (not installed: no root needed once the
    package lists exist). Skips, saying why, only when apt cannot provide it."""
    root = CACHE / package
    if root.exists():
        return root
    if not shutil.which("apt-get"):
        pytest.skip(f"this machine has no apt-get to fetch Debian's {package}")
    CACHE.mkdir(parents=True, exist_ok=True)
    download = ["apt-get", "download", "-q", package]
    done = subprocess.run(download, cwd=CACHE, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=300)
        done = subprocess.run(download, cwd=CACHE, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"cannot fetch Debian's {package}: {done.stderr.strip()[-500:]}")
    deb = max(CACHE.glob(f"{package}_*.deb"))
    # Unpacked aside and renamed: an interrupted unpack must not pass for a complete one next time.
    partial = CACHE / f"{package}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True, timeout=300)
    partial.rename(root)
    deb.unlink()
    return root


def debian_binary(package: str, binary: str) -> str:
    """`binary` from PATH, else from Debian's `package`, unpacked (debian_package)."""
    return shutil.which(binary) or str(debian_package(package) / "usr" / "bin" / binary)


def chinese_fonts() -> tuple[dict[str, str], set[str]]:
    """The environment under which fontconfig (hence chromium) finds a font that covers Chinese,
    and the families that do. The machine's own when it has one; else Debian's WenQuanYi Micro Hei
    (what deploy/Dockerfile installs), unpacked and added to the machine's fonts."""
    env: dict[str, str] = {}
    families = _families_of_chinese(env)
    if families:
        return env, families
    fonts = debian_package("fonts-wqy-microhei") / "usr" / "share" / "fonts"
    conf = CACHE / "fonts.conf"
    conf.write_text(f"""<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>{fonts}</dir>
  <cachedir>{CACHE / "fontconfig"}</cachedir>
</fontconfig>
""", encoding="utf-8")
    env = {"FONTCONFIG_FILE": str(conf)}
    return env, _families_of_chinese(env) or {"WenQuanYi Micro Hei"}


def _families_of_chinese(env: dict[str, str]) -> set[str]:
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return set()
    listed = subprocess.run([fc_list, ":lang=zh-cn", "family"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env}).stdout
    return {family for line in listed.splitlines() for family in line.split(",") if family}


def npm_package(name: str, version: str) -> Path:
    """The npm registry's `name`@`version`, unpacked under .venv/tools (no Node.js needed: the
    tarball is fetched over HTTPS). Skips, saying why, only when the registry cannot be reached."""
    import tarfile
    import urllib.request

    root = CACHE / "npm" / f"{name.replace('/', '+')}@{version}"
    if root.exists():
        return root / "package"
    tarball = f"https://registry.npmjs.org/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with urllib.request.urlopen(tarball, timeout=120) as response, \
                tarfile.open(fileobj=response, mode="r|gz") as archive:
            archive.extractall(partial, filter="data")
    except OSError as exc:
        pytest.skip(f"cannot fetch {tarball}: {exc}")
    partial.rename(root)
    return root / "package"
