"""Plain-text tables and times for the CLI's `get`, `describe` and `tokens list`."""

from __future__ import annotations

from datetime import datetime, timezone


def table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "no objects"
    widths = column_widths(rows)
    return "\n".join([row_line({k: k for k in widths}, widths)] + [row_line(r, widths) for r in rows])


def column_widths(rows: list[dict[str, str]]) -> dict[str, int]:
    return {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}


def row_line(row: dict[str, str], widths: dict[str, int]) -> str:
    return "  ".join(row[k].ljust(w) for k, w in widths.items()).rstrip()


def when(t: float | None) -> str:
    """A time as UTC, to the second ("-" for none)."""
    return "-" if t is None else datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
