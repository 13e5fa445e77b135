"""consensus/, market/ and the chain driver do no I/O, read no clock, draw no randomness.

Why: every validator must reach the same state from the same blocks, and the same engine code
runs under the node and under the seeded cluster simulator.  One stray ``time.time()``, file
read or ``random`` call in the application or an engine makes validators diverge or makes a
simulation unreproducible, and it can hide one import away (market/app.py imports
genesis/schema.py, which must therefore be pure too).  The rule is checked on the source with
``ast``, following first-party imports, and every offence is reported as file:line.  The
chain driver (node/driver.py) decides everything about the chain for the node and for the
cluster simulators alike, so it is held to the same rule; the rest of node/ does I/O and stays
forbidden to every pure module.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: What must be pure: packages scanned recursively (market/scheduling/ included) and single
#: modules; each lives in the repository root and is installed under ``gridchain``.
PURE_ROOTS = ("consensus", "market", "node/driver.py")
#: The one import name the project installs.
PACKAGE = "gridchain"
#: First-party packages whose modules are followed when a pure module imports them; every other
#: module under ``gridchain`` (node, wallet, meterbridge, bench, the CLI) does I/O.
FOLLOWED = frozenset(
    {f"{PACKAGE}.{name}" for name in ("protocol", "genesis", "market", "consensus")}
)
#: Single pure modules inside a package that does I/O (gridchain.node): followed, and the only
#: part of it a pure module may import.
FOLLOWED_MODULES = frozenset({f"{PACKAGE}.node.driver"})
#: Top-level modules that do I/O, read a clock or draw randomness.
FORBIDDEN_MODULES = frozenset(
    {
        # named by the design and the brief
        "asyncio",
        "aiohttp",
        "plyvel",
        "pymodbus",
        "time",
        "random",
        "socket",
        "uvloop",
        "requests",
        "os",
        "subprocess",
        "pathlib",
        "datetime",
        "threading",
        "urllib",
        "http",
        "io",
        "shutil",
        "tempfile",
        "secrets",
        "structlog",
        "logging",
        # the same kinds of thing under other names
        "builtins",
        "importlib",
        "multiprocessing",
        "concurrent",
        "select",
        "selectors",
        "ssl",
        "signal",
        "sqlite3",
        "uuid",
        "getpass",
        "serial",
        "httpx",
        # the tests; and the names first-party packages had before they moved under gridchain
        # (importing one would load a second copy of the module)
        "tests",
        "node",
        "wallet",
        "meterbridge",
        "bench",
        "protocol",
        "market",
        "consensus",
        "genesis",
    }
)
#: Builtins that do I/O or load code at run time.
FORBIDDEN_CALLS = frozenset({"open", "input", "__import__", "exec", "eval", "breakpoint"})


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    line: int
    what: str
    via: tuple[str, ...] = ()

    def __str__(self) -> str:
        chain = f" (reached via {' -> '.join(self.via)})" if self.via else ""
        return f"{self.path}:{self.line}: {self.what}{chain}"


@dataclass(slots=True)
class ModuleScan:
    violations: list[Violation] = field(default_factory=list)
    #: First-party names this source imports: (absolute name, line, must be a module).
    #: ``from pkg import name`` also lists pkg.name, which may be a module or an attribute.
    first_party: list[tuple[str, int, bool]] = field(default_factory=list)


def _followed(module: str) -> bool:
    return ".".join(module.split(".")[:2]) in FOLLOWED or module in FOLLOWED_MODULES


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _Visitor(ast.NodeVisitor):
    def __init__(self, path: str, module: str, is_package: bool) -> None:
        self.path = path
        self.package = module if is_package else module.rpartition(".")[0]
        self.result = ModuleScan()

    def _offend(self, node: ast.stmt | ast.expr, what: str) -> None:
        self.result.violations.append(Violation(self.path, node.lineno, what))

    def _check_module(self, node: ast.stmt, name: str) -> None:
        top = name.split(".", maxsplit=1)[0]
        if top in FORBIDDEN_MODULES or (top == PACKAGE and not _followed(name)):
            self._offend(node, f"imports {name}")
        elif _followed(name):
            self.result.first_party.append((name, node.lineno, True))

    def visit_If(self, node: ast.If) -> None:
        # `if TYPE_CHECKING:` bodies never run; the else branch does.
        if not _is_type_checking(node.test):
            self.visit(node.test)
            for stmt in node.body:
                self.visit(stmt)
        for stmt in node.orelse:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".") if self.package else []
            keep = len(parts) - (node.level - 1)
            if keep <= 0:
                self._offend(node, "relative import beyond the top-level package")
                return
            base = ".".join(parts[:keep] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        self._check_module(node, base)
        if _followed(base):
            # `from pkg import name` imports pkg.name when it is a module.
            for alias in node.names:
                if alias.name != "*":
                    self.result.first_party.append((f"{base}.{alias.name}", node.lineno, False))

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            self._offend(node, f"calls {node.func.id}()")
        self.generic_visit(node)


def scan_source(source: str, *, path: str, module: str, is_package: bool = False) -> ModuleScan:
    """Violations in one module's source and the first-party modules it imports."""
    visitor = _Visitor(path, module, is_package)
    visitor.visit(ast.parse(source, filename=path))
    return visitor.result


def module_file(root: Path, module: str) -> Path | None:
    """The source of ``gridchain.<package>...``: the package's folder in the repository root."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(root: Path, path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _with_parents(module: str) -> list[str]:
    """Importing gridchain.a.b runs a/__init__.py first (gridchain/__init__.py is empty)."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(1, len(parts))]


@dataclass(slots=True)
class PurityReport:
    violations: list[Violation]
    #: Every module checked, by path relative to the root.
    reached: set[str]


def _sources(path: Path) -> list[Path]:
    """A pure root's modules: the file itself, or every module under the folder."""
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def check_purity(root: Path, pure_roots: tuple[str, ...] = PURE_ROOTS) -> PurityReport:
    """Scan every module under ``pure_roots`` and every first-party module they reach."""
    start: list[str] = []
    for pure in pure_roots:
        for source in _sources(root / pure):
            start.append(module_name(root, source))
    via: dict[str, tuple[str, ...]] = {}
    queue: deque[str] = deque()
    for name in start:
        for m in _with_parents(name):
            if m not in via:
                via[m] = ()
                queue.append(m)
    violations: list[Violation] = []
    reached: set[str] = set()
    while queue:
        name = queue.popleft()
        path = module_file(root, name)
        if path is None:
            continue  # `from pkg import attribute`: not a module
        rel = path.relative_to(root).as_posix()
        reached.add(rel)
        result = scan_source(
            path.read_text(encoding="utf-8"),
            path=rel,
            module=name,
            is_package=path.name == "__init__.py",
        )
        violations.extend(Violation(v.path, v.line, v.what, via[name]) for v in result.violations)
        for target, line, must_exist in result.first_party:
            if module_file(root, target) is None:
                if must_exist:  # cannot be checked, so cannot be trusted
                    violations.append(
                        Violation(rel, line, f"imports unknown module {target}", via[name])
                    )
                continue
            chain = (*via[name], f"{rel}:{line}")
            for m in _with_parents(target):
                if m not in via:
                    via[m] = chain
                    queue.append(m)
    return PurityReport(sorted(violations, key=lambda v: (v.path, v.line)), reached)


# --- the real tree ---------------------------------------------------------------------------


def test_consensus_and_market_are_pure() -> None:
    report = check_purity(ROOT)
    assert report.violations == [], "impure modules:\n" + "\n".join(map(str, report.violations))


def test_the_scan_covers_the_pure_packages_and_what_they_import() -> None:
    """The check is only worth something if it really walks the tree it claims to."""
    reached = check_purity(ROOT).reached
    own = {p.relative_to(ROOT).as_posix() for r in PURE_ROOTS for p in _sources(ROOT / r)}
    assert own <= reached
    assert "node/driver.py" in own
    # The driver's mempool is a Protocol: the real one (and the rest of node/) is not reached.
    assert "node/mempool.py" not in reached
    assert "node/runtime.py" not in reached
    # Reached only through imports: market/app.py -> genesis/schema.py -> protocol/address.py.
    assert {"genesis/schema.py", "protocol/address.py", "protocol/encoding.py"} <= reached
    # Uses os (random salts); nothing pure may import it.
    assert "protocol/keystore.py" not in reached


# --- the scanner itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "what"),
    [
        ("import time\n", 1, "imports time"),
        ("import os.path\n", 1, "imports os.path"),
        ("x = 1\nfrom datetime import datetime\n", 2, "imports datetime"),
        ("import asyncio as aio\n", 1, "imports asyncio"),
        ("def f() -> None:\n    import random\n", 2, "imports random"),
        ("from gridchain.node.store import Store\n", 1, "imports gridchain.node.store"),
        ("from gridchain.node.mempool import Mempool\n", 1, "imports gridchain.node.mempool"),
        ("from gridchain.node import runtime\n", 1, "imports gridchain.node"),
        ("from node.store import Store\n", 1, "imports node.store"),
        ("import gridchain.wallet.cli\n", 1, "imports gridchain.wallet.cli"),
        ("import plyvel\n", 1, "imports plyvel"),
        ("def load(p):\n    with open(p) as f:\n        return f.read()\n", 2, "calls open()"),
        ("x = __import__('socket')\n", 1, "calls __import__()"),
        ("try:\n    pass\nexcept ImportError:\n    import secrets\n", 4, "imports secrets"),
    ],
)
def test_scanner_reports_file_and_line(source: str, line: int, what: str) -> None:
    result = scan_source(source, path="market/bad.py", module="gridchain.market.bad")
    assert [str(v) for v in result.violations] == [f"market/bad.py:{line}: {what}"]


@pytest.mark.parametrize(
    "source",
    [
        "import hashlib\nimport math\nfrom dataclasses import dataclass\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pathlib import Path\n",
        "import typing\nif typing.TYPE_CHECKING:\n    import asyncio\n",
        "class F:\n    def open(self) -> None: ...\nF().open()\n",  # a method, not the builtin
        "import timeit_is_not_time\n",
        "from gridchain.node.driver import ChainDriver\n",  # the one pure module of node/
    ],
)
def test_scanner_accepts_pure_source(source: str) -> None:
    assert scan_source(source, path="market/ok.py", module="gridchain.market.ok").violations == []


def test_relative_imports_resolve_to_first_party_modules() -> None:
    result = scan_source(
        "from . import model\nfrom ..errors import ApplicationError\n",
        path="market/scheduling/qp.py",
        module="gridchain.market.scheduling.qp",
    )
    names = {name for name, _, _ in result.first_party}
    assert {
        "gridchain.market.scheduling.model",
        "gridchain.market.errors",
        "gridchain.market.errors.ApplicationError",
    } <= names
    assert result.violations == []


def test_a_violation_one_import_away_is_found(tmp_path: Path) -> None:
    """market/a.py imports gridchain.protocol.helper, which imports os: reported in
    protocol/helper.py."""
    for pkg in ("market", "protocol", "consensus"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "market" / "a.py").write_text("from gridchain.protocol.helper import thing\n")
    (tmp_path / "protocol" / "helper.py").write_text('"""doc"""\n\nimport os\nthing = 1\n')
    (tmp_path / "protocol" / "unused.py").write_text("import socket\n")  # never imported

    report = check_purity(tmp_path)

    assert [str(v) for v in report.violations] == [
        "protocol/helper.py:3: imports os (reached via market/a.py:1)"
    ]
    assert "protocol/unused.py" not in report.reached


def test_a_violation_in_a_package_init_is_found(tmp_path: Path) -> None:
    """Importing gridchain.genesis.schema runs genesis/__init__.py first."""
    for pkg in ("market", "consensus", "genesis"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "genesis" / "__init__.py").write_text("import logging\n")
    (tmp_path / "genesis" / "schema.py").write_text("X = 1\n")
    (tmp_path / "consensus" / "e.py").write_text("import gridchain.genesis.schema\n")

    violations = [str(v) for v in check_purity(tmp_path).violations]

    assert violations == ["genesis/__init__.py:1: imports logging (reached via consensus/e.py:1)"]


def test_a_violation_in_the_chain_driver_is_found(tmp_path: Path) -> None:
    """node/driver.py is a pure root though node/ is not: its own imports are checked."""
    for pkg in ("market", "consensus", "node"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "node" / "driver.py").write_text('"""doc"""\nimport time\n')
    (tmp_path / "node" / "runtime.py").write_text("import asyncio\n")  # not pure, not scanned

    violations = [str(v) for v in check_purity(tmp_path).violations]

    assert violations == ["node/driver.py:2: imports time"]
