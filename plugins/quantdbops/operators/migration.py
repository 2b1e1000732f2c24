"""Operators of the migration DAG: prepare, load one table, prune, validate, refresh, benchmark, summarise.

Each reads the run's ``MigrationRequest`` (so a bad param fails before any write), opens the source and the
target only when it runs, and returns a typed result (counts, seconds, statuses) that the next steps receive
through the DAG's wiring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from quantdbops import CONN_SQLITE, REGIONS
from quantdbops.errors import ActionableFailure
from quantdbops.migration.params import MigrationRequest
from quantdbops.migration.results import (
    AggregateRefresh,
    MigrationSummary,
    PreparedMigration,
    PruneResult,
    SloOutcome,
    TableLoadResult,
    ValidationSummary,
)
from quantdbops.operators.base import QuantOperator
from quantdbops.registry import dependency_order, migratable_tables, table
from quantdbops.report import format_table

if TYPE_CHECKING:  # imported where the task runs, not when the DAG file is parsed
    from quantdbops.migration.validate import Validator

# The source cannot be read as it is: a retry reads the same file.
SOURCE_WHAT_TO_DO = ("nothing was written. Point the spock_sqlite connection (or the run's source_path "
                     "param) at the platform's spock_local.db, readable on the workers, or deselect the "
                     "tables it lacks; then trigger again")


def _loaded(loads: list[Any] | None) -> list[TableLoadResult]:
    """The loads that ran (a skipped or failed load has no result)."""
    return [x for x in loads or [] if x is not None]


class MigrationStep(QuantOperator[MigrationRequest]):
    """A step of the migration DAG: the target database and the source file (the ``spock_sqlite`` connection,
    or the run's ``source_path``; an ``s3://`` source is fetched once per run and worker)."""

    request_type = MigrationRequest

    def __init__(self, *, sqlite_conn_id: str = CONN_SQLITE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sqlite_conn_id = sqlite_conn_id

    def open_source(self, request: MigrationRequest, context: Any) -> tuple[Any, str]:
        """The source opened read-only, and its name."""
        from quantdbops.io.sqlite import sqlite_path
        from quantdbops.migration.source import SourceError, open_source

        name = request.source_path or sqlite_path(self.sqlite_conn_id)
        try:
            path = name
            if name.startswith("s3://"):
                from airflow.providers.amazon.aws.hooks.s3 import S3Hook

                from quantdbops import CONN_S3
                from quantdbops.migration.source_fetch import fetch_source

                fetched = fetch_source(name, run_id=context["run_id"], hook=S3Hook(aws_conn_id=CONN_S3),
                                       expected_sha256=request.source_sha256)
                self.log.info("Source %s %s: %.1f MB, sha256 %s, in %.1fs, at %s", name,
                              "fetched" if fetched.downloaded else "already fetched on this worker for this run",
                              fetched.size_bytes / 1e6, fetched.sha256, fetched.seconds, fetched.path)
                path = str(fetched.path)
            return open_source(path), name
        except SourceError as exc:
            raise ActionableFailure(str(exc), what_to_do=exc.what_to_do or SOURCE_WHAT_TO_DO) from exc


class PrepareMigrationOperator(MigrationStep):
    """Check params and source, apply the target schema (not in a dry run), detect and log the mode."""

    ui_color = "#e8f0fe"

    results = (PreparedMigration,)

    def run(self, request: MigrationRequest, context: Any) -> PreparedMigration:
        from quantdbops.io.pg import detect_mode
        from quantdbops.migration.provenance import describe_file, previous_run, record_source, target_of
        from quantdbops.migration.source import SourceError, inspect_source, require_complete, source_file
        from quantdbops.schema.apply import apply_schema

        self.log.info("Migration requested: %s", request.describe())
        sconn, name = self.open_source(request, context)
        local = source_file(sconn)
        selected = [table(n) for n in request.tables]
        report = inspect_source(sconn, local, selected)
        report.path = name
        try:
            require_complete(report)
        except SourceError as exc:
            raise ActionableFailure(str(exc), what_to_do=SOURCE_WHAT_TO_DO) from exc
        source = describe_file(name, local)
        self.log.info("Source %s:\n%s", source.describe(), format_table(
            ["source table", "rows", "target"],
            [(n, c, next((t.name for t in migratable_tables() if t.source == n), "NOT MIGRATED"))
             for n, c in sorted(report.tables.items())]))
        for src, why in report.not_migrated.items():
            self.log.warning("Not migrated: %s (%s rows): %s", src, f"{report.tables.get(src, 0):,}", why)
        for src, cols in report.extra_columns.items():
            self.log.warning("Source %s has columns the registry does not know (not migrated): %s",
                             src, ", ".join(cols))
        with self.database.connect(autocommit=True) as pg:
            target = target_of(pg)
            if request.dry_run:
                mode = detect_mode(pg)
                exists = pg.execute("SELECT to_regclass('ops.schema_version') IS NOT NULL").fetchone()[0]
                self.log.info("DRY RUN: schema not applied (it %s). Target mode would be: %s",
                              "exists" if exists else "does not exist yet", mode.describe())
                schema = {"mode": mode.name, "applied": False}
            else:
                result = apply_schema(pg)
                mode = result.mode
                schema = {**result.as_dict(), "applied": True}
            previous = previous_run(pg, context["run_id"])
            recorded = record_source(pg, context["run_id"], source, dry_run=request.dry_run, mode=mode.name)
        self.log.info("Target: %s, %s; dry_run: %s", target, mode.describe(), "yes" if request.dry_run else "no")
        if previous is None:
            self.log.info("No earlier migration wrote this database.")
        elif previous.sha256 == source.sha256:
            self.log.info("Previous migration of this database: %s: the same file as this run.", previous.describe())
        else:
            self.log.warning("Previous migration of this database: %s. This run reads ANOTHER file: rows of merged "
                             "tables (tickers) that only the earlier file had stay in the target unless this run "
                             "sets prune_tickers.", previous.describe())
        if not recorded:
            self.log.info("The source is not recorded in ops.migration_sources: the schema does not exist yet.")
        return PreparedMigration(
            source_path=name, source=source.as_dict(), target=target,
            previous_run=previous.run_id if previous else None, source_tables=dict(report.tables),
            not_migrated=dict(report.not_migrated), extra_columns={k: list(v) for k, v in report.extra_columns.items()},
            mode=mode.name, schema=schema, request=request.describe())


class MigrateTableOperator(MigrationStep):
    """Load one target table from the source: stream, map, check, quarantine, checksum, in one transaction."""

    ui_color = "#e6f4ea"
    results = (TableLoadResult,)
    # For a failure the task did not explain itself (the alert's "what to do").
    what_to_do = ("the table's slices are replaced in one transaction, so the target is as it was: check that the "
                  "database answers, then clear this task (a re-run gives exact parity, no duplicates)")

    def __init__(self, *, table_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not table(table_name).migratable:  # bad config fails when the DAG is parsed
            raise ValueError(f"{table_name} has no source table")
        self.table_name = table_name

    def run(self, request: MigrationRequest, context: Any) -> TableLoadResult:
        import psycopg

        from quantdbops.io.pg import detect_mode
        from quantdbops.migration.target_load import load_table

        if self.table_name not in request.tables:
            raise AirflowSkipException(f"{self.table_name} was not selected in the params")
        sconn, path = self.open_source(request, context)
        t = table(self.table_name)
        with self.database.connect() as pg:
            mode = detect_mode(pg)
            pg.commit()
            try:
                result = load_table(sconn, pg, t, request.slice_filter(), run_id=context["run_id"], mode=mode,
                                    dry_run=request.dry_run, progress=self.log.info)
            except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
                # Deterministic: the same rows would be refused again, so no retry. The transaction rolled
                # back, the target is as it was before this task.
                raise ActionableFailure(
                    f"PostgreSQL refused a row of {t.name} that passed the loader's checks ({exc}). Nothing of "
                    f"{t.name} was changed.", what_to_do=(
                        "this is a gap in the mapping checks (a quarantine rule is missing for this value): "
                        f"report it with the error above, or deselect {t.name} in the trigger form to go on"),
                ) from exc
        rows = [(r, s.source_rows, s.loaded, s.rejected_rows,
                 ", ".join(f"{k} {v:,}" for k, v in sorted(s.rejected.items())) or "-")
                for r, s in sorted(result.regions.items())]
        rows.append(("TOTAL", result.source_rows, result.loaded, sum(result.rejected.values()),
                     f"{result.seconds:.2f}s, {result.rows_per_sec:,.0f} rows/s"))
        self.log.info("%s %s from %s:\n%s", "Dry run of" if request.dry_run else "Loaded", t.name, path,
                      format_table(["region", "source rows", "loaded", "rejected", "rejects by reason"], rows))
        if result.unknown_columns:
            self.log.warning("%s: source columns not in the registry (not migrated): %s", t.name,
                             ", ".join(result.unknown_columns))
        if result.rejected:
            self.log.warning("%s: %s rows quarantined in ops.migration_rejects (run_id %s): fix them in the "
                             "source and re-run this table, or accept them; they are never dropped silently.",
                             t.name, f"{sum(result.rejected.values()):,}", context["run_id"])
        if not result.balances:
            raise ActionableFailure(
                f"{t.name}: source rows {result.source_rows} != loaded + rejected "
                f"({result.loaded} + {sum(result.rejected.values())})",
                what_to_do="this is a bug in the loader, not in the data: keep this log and report it; do not "
                           "use the table's data until validate has compared it with the source")
        return result


class PruneTickersOperator(MigrationStep):
    """With ``prune_tickers``: after the loads, delete target tickers the source no longer has, where nothing
    references them; list those kept."""

    ui_color = "#fce8e6"
    what_to_do = ("nothing was deleted unless the log says so (one transaction): check that the database answers, "
                  "then clear this task")

    results = (PruneResult,)

    def run(self, request: MigrationRequest, context: Any) -> PruneResult:
        from quantdbops.migration.prune import prune_tickers

        if not request.prune_tickers:
            raise AirflowSkipException("prune_tickers is off: tickers are only added and updated")
        if "tickers" not in request.tables:
            raise AirflowSkipException("tickers was not selected: nothing to prune")
        sconn, path = self.open_source(request, context)
        with self.database.connect(autocommit=True) as pg:
            pruned = prune_tickers(sconn, pg, list(request.regions), dry_run=request.dry_run)
        verb = "would delete" if pruned.dry_run else "deleted"
        self.log.info("prune_tickers %s %d target tickers of %s that %s does not have (or quarantines)%s", verb,
                      len(pruned.deleted), ",".join(request.regions), path,
                      ": " + ", ".join(f"{t} {r}" for t, r in pruned.deleted[:30])
                      + (" ..." if len(pruned.deleted) > 30 else "") if pruned.deleted else "")
        if pruned.kept:
            self.log.warning("%d tickers the source does not have were KEPT because other rows reference them; "
                             "validate will report them. Delete those rows first if the tickers are really gone:\n%s",
                             len(pruned.kept), format_table(["ticker", "region", "referenced by"], [
                                 (t, r, ", ".join(v)) for (t, r), v in sorted(pruned.kept.items())[:50]]))
        return pruned


class ValidateMigrationOperator(MigrationStep):
    """Parity of the target with the source: counts, coverage, rules, references, features, samples and the
    full-content checksum; any failure fails without retry."""

    ui_color = "#fef7e0"
    template_fields = ("loads",)
    results = (ValidationSummary,)

    def __init__(self, *, loads: list[Any], **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.loads = loads  # every load task's TableLoadResult

    def run(self, request: MigrationRequest, context: Any) -> ValidationSummary:
        from quantdbops.io.pg import detect_mode
        from quantdbops.migration import verdict
        from quantdbops.migration.validate import Validator, record_results

        if request.dry_run:
            loads = _loaded(self.loads)
            bad = [x.table for x in loads if not x.balances]
            self.log.info("DRY RUN: the target was not written, so only the source side is checked: every "
                          "source row of %d tables would be loaded or quarantined%s.", len(loads),
                          "" if not bad else f" EXCEPT {bad}")
            if bad:
                raise ActionableFailure(f"dry run does not balance for {bad}", what_to_do=(
                    "this is a bug in the loader, not in the data (nothing was written): keep this log and "
                    "report it"))
            return ValidationSummary(dry_run=True, tables=len(loads))
        sconn, _ = self.open_source(request, context)
        tables = [table(n) for n in dependency_order(request.tables)]
        with self.database.connect(autocommit=True) as pg:
            mode = detect_mode(pg)
            validator = Validator(sconn, pg, tables, request.slice_filter(), mode, run_id=context["run_id"])
            results = validator.run()
            record_results(pg, context["run_id"], results)
        failed = [r for r in results if r.status == "fail"]
        self._log_results(context["run_id"], mode, results, failed, validator)
        if failed:
            # The message is the last thing in the log: what differs down to the row, then what to do.
            raise ActionableFailure(verdict.describe(failed, len(results), results, context["run_id"]),
                                    what_to_do=verdict.what_to_do(failed, context["run_id"], results))
        return ValidationSummary(checks=len(results), failed=len(failed))

    def _log_results(self, run_id: str, mode: Any, results: list[Any], failed: list[Any],
                     validator: Validator) -> None:
        """The verdict, the failing checks, one line per table (rows checked, seconds), the time by family of
        checks, and where every check is."""
        took = sum(validator.seconds_by_check.values())
        if failed:
            self.log.error("Validation of run %s (%s): FAILED %d of %d checks in %.1fs:\n%s", run_id, mode.describe(),
                           len(failed), len(results), took, format_table(
                               ["check", "table", "region", "expected", "actual"],
                               [(r.check, r.table or "", r.region or "", r.expected, r.actual) for r in failed]))
        else:
            self.log.info("Validation of run %s (%s): all %d checks passed in %.1fs", run_id, mode.describe(),
                          len(results), took)
        per_table: dict[str, list[int]] = {}
        for r in results:
            if r.table and r.check == "row_counts":
                totals = per_table.setdefault(r.table, [0, 0, 0, 0, 0])
                for i, k in enumerate(("source", "target", "rejected")):
                    totals[i] += int(r.details.get(k, 0))
        for r in results:
            if r.table in per_table:
                per_table[r.table][3] += 1
                per_table[r.table][4] += r.status == "fail"
        self.log.info("Rows checked per table:\n%s", format_table(
            ["table", "source rows", "loaded", "rejected", "checks", "failed", "seconds"],
            [(t, *v, round(validator.seconds_by_table.get(t, 0.0), 2)) for t, v in per_table.items()]))
        self.log.info("Time by family of checks (slowest first): %s", ", ".join(
            f"{name} {s:.1f}s" for name, s in sorted(validator.seconds_by_check.items(), key=lambda kv: -kv[1])))
        skipped = sum(r.status == "skip" for r in results)
        self.log.info("%d other checks passed%s. Every check with its figures: SELECT check_name, table_name, region, "
                      "status, expected, actual FROM ops.validation_results WHERE run_id = '%s' ORDER BY id;",
                      len(results) - len(failed) - skipped, f" ({skipped} skipped)" if skipped else "", run_id)


class RefreshAggregatesOperator(MigrationStep):
    """Refresh the aggregates (materialized views or continuous aggregates) over the tables this run loaded."""

    ui_color = "#e6f4ea"
    template_fields = ("loads",)
    results = (AggregateRefresh,)
    what_to_do = ("the data is loaded; only the aggregates are stale: check that the database answers, then clear "
                  "this task (a refresh is idempotent; the weekly maintenance refreshes them too)")

    def __init__(self, *, loads: list[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loads = loads  # every load task's TableLoadResult

    def run(self, request: MigrationRequest, context: Any) -> list[AggregateRefresh]:
        from quantdbops.io.pg import detect_mode
        from quantdbops.migration.aggregates import refresh_after_load

        if request.dry_run:
            raise AirflowSkipException("dry run: nothing was loaded, the aggregates are as they were")
        loaded = [x.table for x in _loaded(self.loads)]
        with self.database.connect(autocommit=True) as pg:
            mode = detect_mode(pg)
            done = refresh_after_load(pg, mode, loaded, self.log.info)
        if not done:
            raise AirflowSkipException(f"no aggregate reads a table this run loaded ({', '.join(loaded) or 'none'})")
        self.log.info("Aggregates refreshed (%s):\n%s", mode.describe(), format_table(
            ["aggregate", "kind", "how", "seconds", "rows"],
            [(r.view, r.kind, r.how, f"{r.seconds:.2f}", r.rows) for r in done]))
        return done


class QuerySloOperator(MigrationStep):
    """The platform's query SLO suite on the migrated data; fails only past a critical threshold."""

    ui_color = "#f3e8fd"
    results = (SloOutcome,)

    def __init__(self, *, runs: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if runs < 1:
            raise ValueError("runs must be >= 1")
        self.runs = runs

    def run(self, request: MigrationRequest, context: Any) -> SloOutcome:
        from quantdbops.io.pg import detect_mode
        from quantdbops.migration import slo

        if request.dry_run:
            raise AirflowSkipException("dry run: nothing was migrated, no queries to time")
        if "ohlcv_data" not in request.tables:
            raise AirflowSkipException("ohlcv_data was not migrated in this run: the SLO suite reads it")
        with self.database.connect(autocommit=True) as pg:
            mode = detect_mode(pg)
            results = slo.run_suite(pg, mode, list(request.regions or REGIONS), runs=self.runs,
                                    say=self.log.info)
            slo.record(pg, context["run_id"], results)

        def ms(v: float | None) -> str:
            return "" if v is None else f"{v:,.1f}"

        self.log.info("Query SLOs (%s, %d runs each, ms):\n%s", mode.describe(), self.runs, format_table(
            ["query", "mean", "median", "p95", "p99", "min", "max", "target/accept/critical", "status"],
            [(r.name, ms(r.stat("mean")), ms(r.stat("median")), ms(r.stat("p95")), ms(r.stat("p99")),
              ms(r.stat("min")), ms(r.stat("max")),
              f"{r.slo.target_ms:.0f}/{r.slo.acceptable_ms:.0f}/{r.slo.critical_ms:.0f}" if r.slo else "",
              r.status.upper() + (f" {r.details}" if r.details and not r.slo else "")) for r in results]))
        warned = [r.name for r in results if r.status == "warn"]
        if warned:
            self.log.warning("Past the acceptable threshold: %s. Check EXPLAIN plans and ANALYZE; the weekly "
                             "maintenance DAG vacuums and reindexes.", ", ".join(warned))
        critical = [r.name for r in results if r.status == "critical"]
        if critical:
            raise ActionableFailure(f"Query SLOs past critical: {', '.join(critical)}. The data is migrated "
                                    "and validated", what_to_do="the database needs tuning before go-live "
                                    "(indexes, ANALYZE, memory settings; see the table above), then clear this task "
                                    "to measure again")
        return SloOutcome({r.name: r.status for r in results})


class MigrationSummaryOperator(MigrationStep):
    """One table for the whole run: per table source rows, loaded, rejected by reason, seconds, rows/s."""

    template_fields = ("prepared", "loads", "aggregates")
    results = (MigrationSummary,)

    def __init__(self, *, prepared: Any, loads: list[Any], aggregates: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.prepared = prepared  # prepare's PreparedMigration
        self.loads = loads  # every load task's TableLoadResult
        self.aggregates = aggregates  # refresh_aggregates' list of AggregateRefresh

    def run(self, request: MigrationRequest, context: Any) -> MigrationSummary:
        prep: PreparedMigration | None = self.prepared
        loads = _loaded(self.loads)
        rows = []
        for x in loads:
            rej = x.rejected
            rows.append((x.table, x.source_rows, x.loaded, sum(rej.values()),
                         ", ".join(f"{k} {v:,}" for k, v in sorted(rej.items())) or "-",
                         f"{x.seconds:.2f}", f"{round(x.rows_per_sec):,}"))
        total_src = sum(x.source_rows for x in loads)
        total_s = sum(x.seconds for x in loads)
        rows.append(("TOTAL", total_src, sum(x.loaded for x in loads),
                     sum(sum(x.rejected.values()) for x in loads), "", f"{total_s:.2f}",
                     f"{total_src / total_s if total_s else 0:,.0f}"))
        self.log.info("%s: %s (mode %s)\n%s", "DRY RUN" if request.dry_run else "Migration complete",
                      request.describe(), prep.mode if prep else None, format_table(
                          ["table", "source rows", "loaded", "rejected", "rejects by reason", "seconds", "rows/s"],
                          rows))
        refreshed: list[AggregateRefresh] = self.aggregates or []
        if refreshed:
            self.log.info("Aggregates refreshed after the load:\n%s", format_table(
                ["aggregate", "kind", "rows", "seconds"],
                [(r.view, r.kind, r.rows, f"{r.seconds:.2f}") for r in refreshed]))
        not_migrated = prep.not_migrated if prep else {}
        if not_migrated:
            src_rows = prep.source_tables if prep else {}
            self.log.info("Source tables NOT migrated (not part of the target schema):\n%s", format_table(
                ["source table", "rows", "why"], [(n, src_rows.get(n, 0), why) for n, why in not_migrated.items()]))
        skipped = [n for n in (t.name for t in migratable_tables()) if n not in request.tables]
        if skipped:
            self.log.info("Target tables not selected in this run: %s", ", ".join(skipped))
        return MigrationSummary(tables=len(loads), source_rows=total_src, not_migrated=sorted(not_migrated),
                                dry_run=request.dry_run)
