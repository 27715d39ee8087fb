"""The contract is its own package: server and clients both import `orderpay.v1`, never each other's code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import server

SERVER_DIR = Path(server.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_server_imports_nothing_from_clients() -> None:
    offenders = {
        str(path.relative_to(SERVER_DIR.parent)): sorted(
            name for name in _imported_modules(path) if name == "clients" or name.startswith("clients.")
        )
        for path in SERVER_DIR.rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_contract_imports_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """What a subprocess started with the venv's python sees, from outside the repository."""
    probe = "from orderpay.v1 import order_service_pb2; print(order_service_pb2.DESCRIPTOR.package)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "orderpay.v1"
