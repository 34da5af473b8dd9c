"""The layers run one way: flows -> tasks -> pipelines; pipelines never imports Prefect."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imported_modules(folder: str) -> dict[str, set[str]]:
    found = {}
    for path in (REPO / folder).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


def test_pipelines_never_imports_prefect_flows_or_tasks():
    offenders = {f: n & {"prefect", "flows", "tasks"} for f, n in _imported_modules("pipelines").items()}
    assert not {f: n for f, n in offenders.items() if n}


def test_tasks_never_import_flows():
    offenders = {f: n & {"flows"} for f, n in _imported_modules("tasks").items()}
    assert not {f: n for f, n in offenders.items() if n}


def test_importing_every_pipelines_module_loads_no_prefect():
    modules = [".".join(p.relative_to(REPO).with_suffix("").parts)
               for p in (REPO / "pipelines").rglob("*.py") if p.name != "__init__.py"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
