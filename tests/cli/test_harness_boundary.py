"""The harness stays out of the product: no node and no operator command imports `yidi_harness`.

`yidi_harness` (federations started for a run, the seed stories, fault injection, the demo)
serves the demo, the tests and the benchmarks. The product — the core, the runtime, the
services and the `yidi` command — reaches it in two places only, both for the demo and both
inside the command function, so that no other command loads it: `yidi demo` and
`yidi certs init --demo`.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

LIBS = Path(__file__).resolve().parents[2] / "libs"
PRODUCT = ("yidi_core", "yidi_runtime", "yidi_services", "yidi_cli")
DEMO_DOORS = {("yidi_cli/main.py", "demo"), ("yidi_cli/certs.py", "init")}
"""Where the product may import the harness: (file, the command function importing it)."""


def _harness_imports(path: Path) -> list[str | None]:
    """The function importing `yidi_harness` for each such import in ``path`` (None: at module level)."""
    found: list[str | None] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, function or child.name)
                continue
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            if any(name == "yidi_harness" or name.startswith("yidi_harness.") for name in names):
                found.append(function)
            visit(child, function)

    visit(ast.parse(path.read_text(encoding="utf-8")), None)
    return found


def test_the_product_imports_the_harness_only_inside_the_demo_commands() -> None:
    doors = set()
    for package in PRODUCT:
        for path in sorted((LIBS / package).rglob("*.py")):
            name = path.relative_to(LIBS).as_posix()
            for function in _harness_imports(path):
                assert function is not None, f"{name} imports yidi_harness at module level"
                doors.add((name, function))
    assert doors == DEMO_DOORS


def test_starting_a_node_or_the_command_line_loads_no_harness() -> None:
    probe = (
        "import sys, yidi_cli.main, yidi_services.node; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'yidi_harness'))"
    )
    path = os.pathsep.join(filter(None, [str(LIBS), os.environ.get("PYTHONPATH")]))
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path},
    ).stdout.strip()
    assert loaded == "[]"
