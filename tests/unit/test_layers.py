"""The layers run one way: flows -> tasks -> pipelines; pipelines never imports Prefect; all of it is `clipline.*`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("flows", "tasks", "pipelines")
CODE_FOLDERS = (*LAYERS, "tests", "bench")


def _imports(folder: str) -> dict[str, set[str]]:
    """Per file, the dotted names it imports (absolute imports only)."""
    found = {}
    for path in (REPO / folder).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


def _layer_or_top(name: str) -> str:
    """`clipline.tasks.train` -> `tasks`; any other module -> its top-level name (`prefect`, `torch`)."""
    parts = name.split(".")
    return parts[1] if parts[0] == "clipline" and len(parts) > 1 else parts[0]


def _offenders(folder: str, forbidden: set[str]) -> dict[str, set[str]]:
    found = {f: {_layer_or_top(n) for n in names} & forbidden for f, names in _imports(folder).items()}
    return {f: n for f, n in found.items() if n}


def test_pipelines_never_imports_prefect_flows_or_tasks():
    assert not _offenders("pipelines", {"prefect", "flows", "tasks"})


def test_tasks_never_import_flows():
    assert not _offenders("tasks", {"flows"})


def test_nothing_imports_the_layers_as_top_level_packages():
    # `import tasks` would find a user's own package first: only `clipline.tasks` is ours.
    bare = {f: {n for n in names if n.split(".")[0] in LAYERS}
            for folder in CODE_FOLDERS for f, names in _imports(folder).items()}
    assert not {f: n for f, n in bare.items() if n}


def _loaded_after_importing(modules: list[str], packages: set[str]) -> list[str]:
    """The modules of `packages` a fresh interpreter holds once it has imported `modules`."""
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {packages!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    return ast.literal_eval(out.stdout.strip())


def test_importing_every_pipelines_module_loads_no_prefect():
    modules = ["clipline." + ".".join(p.relative_to(REPO).with_suffix("").parts)
               for p in (REPO / "pipelines").rglob("*.py") if p.name != "__init__.py"]
    assert _loaded_after_importing(modules, {"prefect"}) == []


def test_configs_and_store_layout_load_neither_duckdb_nor_pyarrow():
    # Every command imports the configs, and listing the store needs only its layout: neither may pay for DuckDB
    # or pyarrow before it knows it needs them.
    assert _loaded_after_importing(["clipline.pipelines.config", "clipline.pipelines.store.layout"],
                                   {"duckdb", "pyarrow"}) == []
