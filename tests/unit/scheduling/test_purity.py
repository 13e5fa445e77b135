"""market/scheduling stays pure: no I/O, clock or global randomness in any of its modules."""

from __future__ import annotations

import ast
from pathlib import Path

import gridchain.market.scheduling

FORBIDDEN = {
    "asyncio",
    "aiohttp",
    "plyvel",
    "pymodbus",
    "time",
    "random",
    "socket",
    "requests",
    "uvloop",
    "os",
    "pathlib",
    "datetime",
    "subprocess",
}


def test_no_forbidden_imports_or_file_access() -> None:
    package = Path(gridchain.market.scheduling.__file__).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                roots = set()
            assert not roots & FORBIDDEN, f"{path.name}: imports {roots & FORBIDDEN}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{path.name}: opens a file at line {node.lineno}"
