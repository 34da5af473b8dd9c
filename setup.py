"""Packaging that pyproject.toml cannot declare: the layer folders under one name, and the build's commit.

The repository keeps `flows/`, `tasks/`, `pipelines/` and `sql/` at its top
level; the wheel (and an editable install) puts them under `clipline`, with the
root folder's `__init__.py` as the `clipline` package itself. A built wheel
also carries `clipline/_build.py`, the git commit it was built from, which
`clipline --version` prints where no checkout is at hand.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
FOLDERS = ("flows", "tasks", "pipelines", "sql")  # each installed as clipline.<folder>


def _packages() -> list[str]:
    found = find_namespace_packages(where=str(ROOT), include=[f"{f}*" for f in FOLDERS], exclude=["*__pycache__"])
    return ["clipline", *(f"clipline.{name}" for name in found)]


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=30, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"  # built from a copy without .git (the container image's build context)


class BuildPy(build_py):
    """build_py that leaves this script out of the root package and stamps the commit into the wheel."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "clipline" and m[1] == "setup")]

    def run(self):
        super().run()
        if not self.editable_mode:
            stamp = Path(self.build_lib) / "clipline" / "_build.py"
            stamp.write_text(f'"""Written by setup.py when the wheel was built."""\n\nCOMMIT = {_commit()!r}\n')


setup(
    packages=_packages(),
    package_dir={"clipline": "."},
    package_data={"clipline.sql.tables": ["*.sql"], "clipline.sql.views": ["*.sql"],
                  "clipline.sql.queries": ["*.sql"], "clipline.pipelines.models": ["configs/*.json"]},
    cmdclass={"build_py": BuildPy},
)
