"""Which imaging library a Python runs clipline's image work on (benchmarks name it beside their figures)."""

from __future__ import annotations

from importlib import metadata


def imaging_library() -> str:
    """pillow-simd where `make install` could build it (it replaces Pillow, same `PIL` API), else Pillow."""
    for name in ("pillow-simd", "pillow"):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "no Pillow"
