"""Plain-text tables for task logs: what on-call reads at 3 a.m. in the Airflow UI."""

from __future__ import annotations

from collections.abc import Sequence


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, title: str | None = None) -> str:
    """tabulate's "simple" table: a dashed rule under the headers, columns two spaces apart; numbers
    right-aligned with thousands separators. The end-to-end tests read these tables back from task logs
    (``tests/e2e/test_e2e_support.parse_table``: the dashed rule gives each column's start)."""
    from tabulate import tabulate

    # Cells are formatted here and never parsed again: a ticker "005930" stays text, a column is numeric only
    # if every value in it is a number.
    align = ["right" if rows and all(_numeric(r[i]) for r in rows) else "left" for i in range(len(headers))]
    table = tabulate([[_cell(v) for v in row] for row in rows], headers=list(headers), tablefmt="simple",
                     disable_numparse=True, colalign=align, preserve_whitespace=True)
    lines = [line.rstrip() for line in table.splitlines()]
    return "\n".join([title, *lines] if title else lines)
