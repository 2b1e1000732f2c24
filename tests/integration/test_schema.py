"""The target schema on a real PostgreSQL 15, in both modes."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from quantdbops.registry import AGGREGATES, TABLES
from quantdbops.schema.apply import apply_schema
from support.harness import MODES

pytestmark = pytest.mark.parametrize("mode", MODES)


def _catalog(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    """Everything applying the schema could change, in a comparable form."""
    q = {
        "columns": "SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default "
                   "FROM information_schema.columns WHERE table_schema IN ('public', 'ops') ORDER BY 1, 2, 3",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE connamespace IN ('public'::regnamespace, 'ops'::regnamespace) ORDER BY 1, 2",
        "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes "
                   "WHERE schemaname IN ('public', 'ops') ORDER BY 1, 2, 3",
        "relations": "SELECT relname, relkind FROM pg_class WHERE relnamespace IN "
                     "('public'::regnamespace, 'ops'::regnamespace) ORDER BY 1",
        "versions": "SELECT version, checksum, mode FROM ops.schema_version ORDER BY id",
        "roles": "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'quant%' ORDER BY 1",
    }
    return {k: [tuple(r) for r in conn.execute(v)] for k, v in q.items()}


def test_applying_twice_changes_nothing(mode: str, pg_conn: psycopg.Connection) -> None:
    first = apply_schema(pg_conn, today=date(2025, 10, 17))
    before = _catalog(pg_conn)
    second = apply_schema(pg_conn, today=date(2025, 10, 17))
    assert first.changed and not second.changed
    assert _catalog(pg_conn) == before
    assert len(before["versions"]) == 1


def test_mode_is_detected_and_recorded(mode: str, schema_conn: psycopg.Connection) -> None:
    recorded = schema_conn.execute("SELECT mode FROM ops.schema_version").fetchone()[0]
    assert recorded == mode


def test_every_registry_table_has_its_columns_and_key(mode: str, schema_conn: psycopg.Connection) -> None:
    for table in TABLES:
        cols = [r[0] for r in schema_conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = %s ORDER BY ordinal_position", (table.name,))]
        assert cols == list(table.column_names), table.name
        key = schema_conn.execute(
            "SELECT array_agg(a.attname ORDER BY array_position(c.conkey, a.attnum)) FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
            "WHERE c.conrelid = %s::regclass AND c.contype IN ('p', 'u') "
            "GROUP BY c.conname ORDER BY c.conname DESC", (f"public.{table.name}",)).fetchall()
        assert list(table.key) in [r[0] for r in key], table.name


@pytest.mark.parametrize(
    ("column_values", "constraint"),
    [
        pytest.param({"high": 9, "low": 10}, "chk_ohlcv_high_low", id="high-below-low"),
        pytest.param({"open": 12}, "chk_ohlcv_high_open", id="open-above-high"),
        pytest.param({"close": 12}, "chk_ohlcv_high_close", id="close-above-high"),
        pytest.param({"open": 7}, "chk_ohlcv_low_open", id="open-below-low"),
        pytest.param({"close": 7}, "chk_ohlcv_low_close", id="close-below-low"),
        pytest.param({"volume": -1}, "chk_ohlcv_volume", id="negative-volume"),
        pytest.param({"timeframe": "1d"}, "chk_ohlcv_timeframe", id="second-timeframe-spelling"),
        pytest.param({"region": "EU"}, "chk_ohlcv_region", id="unknown-region"),
    ],
)
def test_check_constraints_reject_bad_ohlcv_rows(
    mode: str, schema_conn: psycopg.Connection, column_values: dict, constraint: str
) -> None:
    row = {"ticker": "005930", "region": "KR", "date": date(2025, 10, 1), "timeframe": "D",
           "open": 10, "high": 11, "low": 8, "close": 9, "volume": 100, "created_at": "2025-10-01 10:00"}
    if mode == "postgresql":
        from quantdbops.registry import OHLCV_DATA
        from quantdbops.schema.partitions import ensure_partitions

        ensure_partitions(schema_conn, OHLCV_DATA, date(2025, 10, 1), date(2025, 10, 1))
    good = dict(row)
    schema_conn.execute(
        f"INSERT INTO ohlcv_data ({', '.join(good)}) VALUES ({', '.join(['%s'] * len(good))})",
        list(good.values()))
    row.update(column_values, date=date(2025, 10, 2))
    with pytest.raises(psycopg.errors.CheckViolation) as err:
        schema_conn.execute(
            f"INSERT INTO ohlcv_data ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
            list(row.values()))
    assert err.value.diag.constraint_name == constraint


def test_time_series_layout_matches_the_mode(mode: str, schema_conn: psycopg.Connection) -> None:
    partitioned = [t for t in TABLES if t.partitioned]
    if mode == "timescaledb":
        rows = dict(schema_conn.execute(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"))
        assert set(rows) == {t.name for t in partitioned}
        assert {n for n, on in rows.items() if on} == {t.name for t in partitioned if t.compression}
        settings = dict(schema_conn.execute(
            "SELECT hypertable::text, segmentby FROM timescaledb_information.hypertable_columnstore_settings"))
        assert settings["ohlcv_data"] == "ticker,region"
        caggs = {r[0] for r in schema_conn.execute(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates")}
        assert caggs == set(AGGREGATES)
        retention = {r[0] for r in schema_conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'")}
        assert retention == {t.name for t in TABLES if t.retention}
    else:
        kinds = dict(schema_conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relname = ANY(%s)", ([t.name for t in partitioned] + list(AGGREGATES),)))
        assert {n for n, k in kinds.items() if k == "p"} == {t.name for t in partitioned}
        assert {n for n, k in kinds.items() if k == "m"} == set(AGGREGATES)
        # partitions exist for the current month and ahead, so the platform can write today's rows
        n_parts = schema_conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.ohlcv_data'::regclass").fetchone()[0]
        assert n_parts >= 4


def test_seed_indexes_exist(mode: str, schema_conn: psycopg.Connection) -> None:
    present = {r[0] for r in schema_conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname='public'")}
    expected = {ix.name for t in TABLES for ix in t.indexes}
    assert expected <= present


def test_roles_exist_without_passwords_in_code(mode: str, schema_conn: psycopg.Connection) -> None:
    roles = {r[0] for r in schema_conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolname IN ('quant_user', 'quant_readonly')")}
    assert roles == {"quant_user", "quant_readonly"}
    can_write = schema_conn.execute(
        "SELECT has_table_privilege('quant_readonly', 'public.ohlcv_data', 'INSERT'), "
        "has_table_privilege('quant_readonly', 'public.ohlcv_data', 'SELECT'), "
        "has_table_privilege('quant_user', 'public.ohlcv_data', 'INSERT')").fetchone()
    assert can_write == (False, True, True)


def test_role_password_comes_from_the_environment(
    mode: str, pg_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANT_READONLY_PASSWORD", "from-env-only")
    apply_schema(pg_conn)
    try:
        can_login = pg_conn.execute(
            "SELECT rolcanlogin, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'quant_readonly'"
        ).fetchone()
        assert can_login == (True, True)
    finally:  # roles are cluster-wide: leave it as the other tests expect
        pg_conn.execute("ALTER ROLE quant_readonly NOLOGIN PASSWORD NULL")


def test_a_role_that_logs_in_already_is_left_alone_and_said_so(
    mode: str, pg_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker-compose.yaml's image creates quant_user as its login superuser: applying must not lock it out."""
    monkeypatch.delenv("QUANT_USER_PASSWORD", raising=False)
    pg_conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'quant_user') THEN "
                    "CREATE ROLE quant_user; END IF; END $$")
    pg_conn.execute("ALTER ROLE quant_user LOGIN PASSWORD 'set-by-the-image'")
    try:
        result = apply_schema(pg_conn)
        assert pg_conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'quant_user'").fetchone()[0]
        assert any("quant_user can log in already" in n for n in result.notes), result.notes
        assert any("quant_readonly stays NOLOGIN" in n for n in result.notes), result.notes
    finally:  # roles are cluster-wide: leave it as the other tests expect
        pg_conn.execute("ALTER ROLE quant_user NOLOGIN PASSWORD NULL")


def test_ops_tables_read_by_run_have_an_index_leading_with_run_id(mode: str, schema_conn: psycopg.Connection) -> None:
    """The DAGs' report tasks read (and re-runs replace) one run's rows: no table scan as the history grows."""
    leading = {r[0] for r in schema_conn.execute(
        "SELECT i.indrelid::regclass::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = i.indkey[0] WHERE a.attname = 'run_id' AND i.indrelid::regclass::text LIKE 'ops.%'")}
    with_run_id = {r[0] for r in schema_conn.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.columns "
        "WHERE table_schema = 'ops' AND column_name = 'run_id'")}
    assert {"ops.quality_results", "ops.maintenance_log"} <= with_run_id
    assert {"ops.quality_results", "ops.maintenance_log"} <= leading, sorted(with_run_id - leading)


def test_a_database_from_before_the_details_column_gets_it(mode: str, pg_conn: psycopg.Connection) -> None:
    """ops.quality_results as the first release created it: applying the schema adds ``details``, keeps rows."""
    pg_conn.execute("CREATE SCHEMA ops")
    pg_conn.execute(
        "CREATE TABLE ops.quality_results (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, run_id text NOT "
        "NULL, check_name text NOT NULL, region text, table_name text, severity text NOT NULL CHECK (severity IN "
        "('error', 'warning', 'info')), violation_count bigint NOT NULL, threshold numeric, passed boolean NOT NULL, "
        "sample_rows jsonb, checked_at timestamptz NOT NULL DEFAULT now())")
    pg_conn.execute("INSERT INTO ops.quality_results (run_id, check_name, severity, violation_count, passed) "
                    "VALUES ('old-run', 'duplicates', 'error', 0, true)")
    apply_schema(pg_conn)
    assert pg_conn.execute("SELECT run_id, details FROM ops.quality_results").fetchall() == [("old-run", None)]


def test_a_database_from_before_the_row_format_column_gets_it(mode: str, pg_conn: psycopg.Connection) -> None:
    """ops.migration_checksums as earlier releases created it: applying the schema adds ``row_format``; old
    rows stay NULL, which validation reports as an earlier format."""
    pg_conn.execute("CREATE SCHEMA ops")
    pg_conn.execute(
        "CREATE TABLE ops.migration_checksums (table_name text NOT NULL, region text NOT NULL, day date NOT NULL, "
        "row_count bigint NOT NULL, checksum numeric NOT NULL, run_id text NOT NULL, computed_at timestamptz NOT "
        "NULL DEFAULT now(), PRIMARY KEY (table_name, region, day))")
    pg_conn.execute("INSERT INTO ops.migration_checksums (table_name, region, day, row_count, checksum, run_id) "
                    "VALUES ('tickers', 'KR', '0001-01-01', 3, 42, 'old-run')")
    apply_schema(pg_conn)
    assert pg_conn.execute("SELECT run_id, row_format FROM ops.migration_checksums").fetchall() == [("old-run", None)]
