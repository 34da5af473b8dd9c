"""Which code is running: the package version and the git commit it came from."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import clipline

PACKAGE_ROOT = Path(clipline.__file__).resolve().parent  # the checkout's root, or site-packages/clipline


@functools.cache
def code_version() -> str:
    """The commit the code came from: a checkout's `git describe` (with `-dirty`), else the one stamped into
    the wheel at build time, else the package version."""
    if (PACKAGE_ROOT / ".git").exists():  # a checkout (an editable install); never a repo that merely holds a venv
        try:
            out = subprocess.run(["git", "-C", str(PACKAGE_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
                                 capture_output=True, text=True, timeout=10, check=True)
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        from clipline._build import COMMIT  # written by setup.py into built wheels only
        return COMMIT
    except ImportError:
        return f"clipline-{clipline.__version__}"


def version_line() -> str:
    """What `clipline --version` prints."""
    return f"clipline {clipline.__version__} (commit {code_version()})"
