"""Fault manifests: the repository's own load, and a wrong one is refused naming the field.

Why: a long manifest typed by hand and run for an hour must not fail (or silently do less)
because of a typo; the runner refuses an unknown field, an unknown node or a skew without an
amount before it starts a single process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridchain.node.faults.manifest import ManifestError, load_manifest
from tests.procs import REPO

MANIFESTS = sorted((REPO / "tests" / "faults").glob("*.toml"))


def test_there_are_ci_and_long_manifests() -> None:
    names = [p.name for p in MANIFESTS]
    assert any(n.startswith("ci-") for n in names)
    assert any(n.startswith("long-") for n in names)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_repository_manifests_load(path: Path) -> None:
    manifest = load_manifest(path)
    for engine in manifest.engines:
        heights = [p.at_height for p in manifest.perturbations(engine)]
        assert heights == sorted(heights)


def test_ci_manifests_cover_every_fault_and_engine() -> None:
    ci = [load_manifest(p) for p in MANIFESTS if p.name.startswith("ci-")]
    for engine in ("pbft", "pob", "epob"):
        actions = {p.action for m in ci if engine in m.engines for p in m.perturbations(engine)}
        assert actions == {"kill", "restart", "pause", "disconnect", "skew"}, engine


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[[perturb]]\nnode = "node-9"\naction = "kill"\nat_height = 3\n', "perturb.0"),
        ('[[perturb]]\nnode = "node-1"\naction = "skew"\nat_height = 3\n', "skew_ms"),
        ('[[perturb]]\nnode = "node-1"\naction = "explode"\nat_height = 3\n', "perturb.0.action"),
        ('[[perturb]]\nnode = "node-1"\naction = "pause"\nat_height = 0\n', "at_height"),
        ("[load]\nrate = 5\n", "load.rate"),
        ("[chain]\nvalidators = 3\n", "chain.validators"),
        ('engines = ["solo"]\n', "engines"),
    ],
)
def test_a_wrong_manifest_is_refused_naming_the_field(
    tmp_path: Path, text: str, named: str
) -> None:
    with pytest.raises(ManifestError, match=named):
        load_manifest(_write(tmp_path, text))


def test_unknown_node_message_lists_the_validators(tmp_path: Path) -> None:
    text = '[[perturb]]\nnode = "node-9"\naction = "kill"\nat_height = 3\n'
    with pytest.raises(ManifestError, match="node-1, node-2, node-3, node-4"):
        load_manifest(_write(tmp_path, text))


def test_not_toml_and_missing(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(_write(tmp_path, "[[perturb\n"))
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nope.toml")
