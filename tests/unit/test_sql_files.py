"""The migration's SQL files and the code that reads them agree: every ``read_sql("migration/...")`` in plugins/
names a file of include/sql/migration/, and every file there is read by some module (a file nothing reads is a
statement someone edits in vain)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from quantdbops.registry import AGGREGATES
from quantdbops.sqlfiles import SQL_ROOT

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
FAMILY = "migration"


def _read_sql_calls() -> list[tuple[str, int, ast.expr]]:
    """(file, line, argument) of every ``read_sql(...)`` call in plugins/."""
    calls = []
    for path in sorted(PLUGINS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "read_sql":
                calls.append((str(path.relative_to(PLUGINS)), node.lineno, node.args[0]))
    return calls


def _named_files() -> dict[str, list[str]]:
    """The migration files the code names -> where; a name built at run time fails (this scan could not see it)."""
    named: dict[str, list[str]] = {}
    for where, line, arg in _read_sql_calls():
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            if arg.value.startswith(f"{FAMILY}/"):
                named.setdefault(arg.value, []).append(f"{where}:{line}")
        elif f"{FAMILY}/" in ast.unparse(arg):
            raise AssertionError(f"{where}:{line}: name {FAMILY} files by a literal string, not {ast.unparse(arg)}")
    return named


def test_every_migration_file_read_exists() -> None:
    missing = {name: where for name, where in _named_files().items() if not (SQL_ROOT / name).is_file()}
    assert not missing, f"read_sql names files missing from include/sql/: {missing}"


def test_every_migration_file_is_read() -> None:
    files = {p.relative_to(SQL_ROOT).as_posix() for p in (SQL_ROOT / FAMILY).rglob("*.sql")}
    assert files, f"no SQL files under include/sql/{FAMILY}/"
    unused = sorted(files - set(_named_files()))
    assert not unused, f"SQL files no module reads: {unused}"


def test_aggregates_are_refreshed_after_the_aggregates_they_read() -> None:
    """Both modes' aggregate files: a view reading another aggregate comes after it in ``AGGREGATES`` (the order
    every refresh follows) and follows the same table's changes; every aggregate is made in both files."""
    order = list(AGGREGATES)
    for mode in ("timescaledb", "plain"):
        text = (SQL_ROOT / "schema" / mode / "create_aggregates.sql").read_text(encoding="utf-8")
        reads = dict(re.findall(r"CREATE MATERIALIZED VIEW IF NOT EXISTS public\.(\w+)\b.*?\bFROM public\.(\w+)",
                                text, re.S))
        assert set(reads) == set(AGGREGATES), mode
        for view, source in reads.items():
            if source in AGGREGATES:
                assert order.index(source) < order.index(view), (mode, view, source)
                assert AGGREGATES[view] == AGGREGATES[source], (mode, view, source)
            else:
                assert AGGREGATES[view] == source, (mode, view, source)
        if mode == "timescaledb":  # quarterly and yearly on the monthly continuous aggregate
            assert any(source in AGGREGATES for source in reads.values()), f"{mode}: no aggregate reads another"
