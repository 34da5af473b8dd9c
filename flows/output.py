"""Print query results as an aligned table, CSV or JSON."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
from collections.abc import Callable, Sequence

MAX_CELL = 60  # characters shown per cell in table format; CSV and JSON are never cut


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def as_table(columns: Sequence[str], rows: Sequence[tuple]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, rule, *body, f"({len(rows)} row{'s' if len(rows) != 1 else ''})"])


def as_csv(columns: Sequence[str], rows: Sequence[tuple]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue().rstrip("\n")


def _json_default(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (datetime.timedelta,)):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


def as_json(columns: Sequence[str], rows: Sequence[tuple]) -> str:
    return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=_json_default, indent=1)


FORMATS: dict[str, Callable[[Sequence[str], Sequence[tuple]], str]] = {
    "table": as_table, "csv": as_csv, "json": as_json,
}
