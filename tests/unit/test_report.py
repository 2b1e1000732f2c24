"""The log tables (``quantdbops.report.format_table``, tabulate's "simple" format): numbers right-aligned with
thousands separators, text as it is, and read back by the end-to-end tests' parser."""

from __future__ import annotations

import pytest

from quantdbops.report import format_table


@pytest.fixture(scope="module")
def parse_table():
    """The parser ``tests/e2e`` reads task-log tables with."""
    from support.e2e import parse_table

    return parse_table


def test_numbers_are_right_aligned_with_separators_and_text_stays_text() -> None:
    table = format_table(["ticker", "region", "rows", "seconds"],
                         [("005930", "KR", 1234567, 3.14159), ("AAPL", "US", 12, 0.5)], title="Loaded ohlcv_data:")
    lines = table.splitlines()
    assert lines[0] == "Loaded ohlcv_data:"
    assert set(lines[2]) == {"-", " "}  # the dashed rule under the headers
    assert lines[3].split() == ["005930", "KR", "1,234,567", "3.14"]  # a ticker is never read as a number
    assert lines[4].split() == ["AAPL", "US", "12", "0.50"]
    assert lines[3].index("1,234,567") + len("1,234,567") == lines[4].index("12") + 2  # right-aligned
    assert lines[1].endswith("rows    seconds") and lines[3].endswith("3.14")
    assert all(line == line.rstrip() for line in lines)


@pytest.mark.parametrize(("headers", "rows"), [
    pytest.param(["table", "source rows", "loaded"], [("ohlcv_data", 52000, 51990), ("tickers", 100, 100)],
                 id="counts"),
    pytest.param(["item", "value"], [("size", 171234567), ("verified", True), ("local copy", None)], id="mixed"),
    pytest.param(["relation", "kind", "manifest", "restored", ""], [("public.t", "table", 10, 9, "<- differs"),
                                                                   ("public.u", "table", 5, 5, "")], id="empty-header"),
    pytest.param(["backup", "action", "why"], [("(none)", "", "")], id="empty-cells"),
    pytest.param(["ticker", "region"], [], id="no-rows"),
])
def test_the_end_to_end_parser_reads_every_table_back(parse_table, headers: list[str], rows: list[tuple]) -> None:
    def cell(v: object) -> str:
        return "" if v is None else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    parsed = parse_table("Some step:\n" + format_table(headers, rows))
    assert parsed == [{h: cell(v) for h, v in zip(headers, row, strict=True)} for row in rows]
