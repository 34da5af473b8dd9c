"""Every flow ends with a markdown summary artifact: a title, its key figures, and where to look next."""

from __future__ import annotations

from collections.abc import Mapping

from prefect.artifacts import create_markdown_artifact


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def summary_markdown(title: str, figures: Mapping[str, object], next_step: str = "") -> str:
    lines = [f"## {title}", "", "| | |", "| --- | --- |"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in figures.items() if value is not None]
    return "\n".join(lines + (["", next_step] if next_step else []))


def publish_summary(key: str, title: str, figures: Mapping[str, object], next_step: str = "") -> None:
    """A markdown artifact (shown on the flow run's page in the Prefect UI)."""
    create_markdown_artifact(summary_markdown(title, figures, next_step), key=key, description=title)
