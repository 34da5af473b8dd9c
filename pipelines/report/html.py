"""Markup helpers: escaped tables and notes, matplotlib figures as inline SVG, PNG bytes as data URIs."""

from __future__ import annotations

import base64
import datetime
import html
import io
from collections.abc import Sequence

import matplotlib
from matplotlib.figure import Figure

MAX_TABLE_ROWS = 50  # longer tables are cut, with a note saying how many rows were left out


def escape(value) -> str:
    return html.escape(str(value), quote=True)


def cell(value) -> str:
    """One value as table text: floats to 4 significant digits, times to the second, lists joined."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return str(value)


def table(rows: Sequence[dict], columns: Sequence[str] | None = None, drop_empty: bool = True,
          total: int | None = None) -> str:
    """An HTML table of `rows` (dicts); columns that are empty in every row are left out when `drop_empty`.
    `total`: the rows there are when `rows` holds only the first of them (the note counts the rest)."""
    columns = list(columns or (rows[0] if rows else []))
    if drop_empty:
        columns = [c for c in columns if any(r.get(c) is not None for r in rows)]
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell(r.get(c)))}</td>" for c in columns) + "</tr>"
                   for r in rows[:MAX_TABLE_ROWS])
    cut = (len(rows) if total is None else total) - MAX_TABLE_ROWS
    more = note(f"{cut} more rows not shown; `clipline sql` returns them all.") if cut > 0 else ""
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{more}'


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def no_runs(what: str) -> str:
    """The fragment of a section whose table is empty: says so rather than failing."""
    return f'<p class="empty">No runs yet: {escape(what)}</p>'


def heading(text: str) -> str:
    return f"<h3>{escape(text)}</h3>"


def svg(figure: Figure, salt: str) -> str:
    """The figure as an inline <svg> element (text kept as text; `salt` keeps element ids apart per figure)."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return f'<figure class="chart">{text[text.index("<svg"):]}</figure>'  # drop the XML prolog and doctype


def png(data: bytes, alt: str, css_class: str = "chart") -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img class="{css_class}" alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'
