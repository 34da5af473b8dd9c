"""clipline installs under one name: a wheel in a fresh environment works beside a user's own `flows` and `tasks`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _git_describe() -> str:
    return _run(["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=12"], REPO).stdout.strip()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding the built wheel; the pinned dependencies come from the test environment's
    site-packages (a path line in a .pth file: its own .pth files, the editable install's finder among
    them, are not run)."""
    root = tmp_path_factory.mktemp("wheel-install")
    commit = _git_describe()
    shutil.rmtree(REPO / "build", ignore_errors=True)  # setuptools' staging folder: files in it would ship again
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"),
          str(REPO)], REPO, timeout=600)
    assert _git_describe() == commit, "building the wheel changed the checkout"
    (wheel,) = (root / "dist").glob("clipline-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], root)
    site = Path(_run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     root).stdout.strip())
    (site / "clipline_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], root)
    return venv


@pytest.fixture(scope="module")
def user_project(tmp_path_factory) -> Path:
    """A Prefect user's project: its own `flows` and `tasks` packages."""
    project = tmp_path_factory.mktemp("user-project")
    for name in ("flows", "tasks"):
        (project / name).mkdir()
        (project / name / "__init__.py").write_text("OWNER = 'user'\n")
    return project


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLIPLINE_SQL_DIR")}
    return {**env, "CLIPLINE_HOME": str(tmp / "home")}


def test_the_wheel_installs_nothing_at_the_top_level_but_clipline(installed, user_project):
    shown = _run([str(installed / "bin/python"), "-m", "pip", "show", "-f", "clipline"], user_project).stdout
    files = [line.strip() for line in shown.split("Files:", 1)[1].splitlines() if line.strip()]
    tops = {f.split("/")[0] for f in files if not f.startswith("..")}  # ../../../bin/clipline is the console script
    assert tops == {"clipline", next(t for t in tops if t.endswith(".dist-info"))}
    assert "clipline/sql/tables/001_run_events.sql" in files  # the store's schema travels with the code
    assert "clipline/pipelines/models/configs/clipline-tiny.json" in files
    assert not any(f.startswith("clipline/tests/") or f == "clipline/setup.py" for f in files)


def test_the_cli_works_from_a_project_with_its_own_flows_and_tasks(installed, user_project, tmp_path):
    clipline = str(installed / "bin/clipline")
    env = _env(tmp_path)
    assert "ingest" in _run([clipline, "--help"], user_project, env).stdout
    assert "--data" in _run([clipline, "train", "--help"], user_project, env).stdout
    out = _run([clipline, "sql", "select 41 + 1 as answer", "--format", "csv"], user_project, env).stdout
    assert out.split() == ["answer", "42"]


def test_the_flows_import_beside_the_users_packages(installed, user_project):
    code = ("import clipline.flows.pipeline, tasks, flows, clipline.tasks.train\n"
            "print(tasks.OWNER, flows.OWNER, clipline.flows.pipeline.__file__)")
    out = _run([str(installed / "bin/python"), "-c", code], user_project, timeout=600).stdout.split()
    assert out[:2] == ["user", "user"]
    assert Path(out[2]).is_relative_to(installed)


def test_version_names_the_commit_the_wheel_was_built_from(installed, user_project, tmp_path):
    out = _run([str(installed / "bin/clipline"), "--version"], user_project, _env(tmp_path)).stdout
    assert out.strip() == f"clipline {version('clipline')} (commit {_git_describe()})"


def test_version_in_a_checkout_names_its_commit(tmp_path):
    out = _run([str(BIN / "clipline"), "--version"], REPO, _env(tmp_path)).stdout
    assert out.strip() == f"clipline {version('clipline')} (commit {_git_describe()})"
