"""Installing gridchain adds one top-level import name: ``gridchain``.

The wheel is built from the repository as a user's ``pip install .`` builds it, installed
without dependencies into a new virtual environment, and the names it added to site-packages
(packages, modules, and ``.pth`` hooks that could add more) are listed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _site_packages(env: Path) -> Path:
    found = list(env.glob("lib/python3*/site-packages"))
    assert len(found) == 1, found
    return found[0]


def _top_level_names(site: Path) -> set[str]:
    names: set[str] = set()
    for entry in site.iterdir():
        if entry.name.endswith((".dist-info", ".egg-info")) or entry.name == "__pycache__":
            continue
        names.add(entry.name.removesuffix(".py"))
    return names


def _copy_of_the_repository(dest: Path) -> Path:
    """The files git tracks, links kept as links (a build in the checkout would leave build/
    and egg-info behind, and could pick up untracked files)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, target = REPO / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(source.readlink())
        elif source.is_file():  # a file deleted in the working tree is still listed
            shutil.copy2(source, target)
    return dest


def test_installing_adds_exactly_the_gridchain_import_name(tmp_path: Path) -> None:
    source = _copy_of_the_repository(tmp_path / "src")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = wheels.glob("gridchain-*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    site = _site_packages(env)
    before = _top_level_names(site)
    subprocess.run(
        [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    added = _top_level_names(site) - before
    assert added == {"gridchain"}
    installed = site / "gridchain"
    # The packages behind the links are real folders in the install, with their data files.
    for name in (
        "protocol",
        "api",
        "market",
        "consensus",
        "node",
        "genesis",
        "wallet",
        "meterbridge",
    ):
        assert (installed / name / "__init__.py").is_file(), name
        assert not (installed / name).is_symlink(), name
    assert list((installed / "meterbridge" / "profiles").glob("*.toml"))
    # The operator page's static files, which the node reads when its API starts (ADR 0038).
    from gridchain.node.operator_page import FILES

    for relative in FILES.values():
        assert (installed / "node" / "ui_static" / relative).is_file(), relative
