"""Write one benchmark's section of docs/benchmarks.md, leaving the other benchmarks' sections as they are."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

DOC_HEADER = ("# Benchmarks\n\nEach section below is written by its `make bench-*` target; rerun the target "
              "to refresh it. Every section names the machine, the versions and the command.\n")


def machine_info() -> str:
    """CPUs this process may use (as nproc counts them), their model, RAM and kernel: every section's Machine line."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    ram_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    cpus = len(os.sched_getaffinity(0))
    return f"{cpus} CPUs (nproc; {cpu}), {ram_kib / 2**20:.1f} GiB RAM, Linux {platform.release()}"


def versions(*packages: str) -> str:
    """clipline's version and commit, then each package's installed version ("?" where not installed): every
    section's Versions line."""
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "?"

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True, check=False).stdout.strip()
    return ", ".join([f"clipline {version('clipline')} ({commit or '?'}, working tree)",
                      *(f"{p} {version(p)}" for p in packages)])


def section_end(lines: list[str], start: int) -> int:
    """Index of the next `#`/`##` heading after `start` outside code fences, or len(lines)."""
    in_fence = False
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("```"):
            in_fence = not in_fence
        elif not in_fence and lines[i].startswith(("# ", "## ")):
            return i
    return len(lines)


def update_section(path: Path, heading: str, section: str) -> None:
    """Replace the section that starts with the line `heading` (up to the next heading) with `section`, or append
    it. The file is read now: other benchmarks write their own sections of it."""
    text = path.read_text() if path.exists() else DOC_HEADER
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    new = [*section.rstrip("\n").splitlines(), ""]  # a blank line before whatever heading follows
    if start is None:
        lines += ["", *new]
    else:
        lines[start:section_end(lines, start)] = new
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
