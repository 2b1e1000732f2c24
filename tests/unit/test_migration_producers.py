"""Producer processes: what they start with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO
from quantdbops.sample import generate

_MAIN_SCRIPT = '''
import sys
from pathlib import Path

with open(sys.argv[2], "a") as marks:  # one line each time this module is imported, in any process
    marks.write(__name__ + "\\n")


def main() -> None:
    from quantdbops.io.pg import DbMode
    from quantdbops.migration.load import load_table
    from quantdbops.migration.plan import SliceFilter
    from quantdbops.migration.source import open_source
    from quantdbops.registry import OHLCV_DATA

    result = load_table(open_source(Path(sys.argv[1])), None, OHLCV_DATA, SliceFilter(), run_id="dry",
                        mode=DbMode(False, None, "15"), dry_run=True, workers=2, parallel_min_rows=0,
                        progress=print)
    print("source rows", result.source_rows)


if __name__ == "__main__":
    main()
'''


def test_producers_do_not_reimport_the_parents_main_module(tmp_path: Path) -> None:
    """In a task the parent's __main__ is the airflow CLI (~1.5 s of imports): producers must not import it."""
    source = tmp_path / "spock_local.db"
    generate(source, tickers_per_region=3, days=30)
    script, marks = tmp_path / "task_main.py", tmp_path / "imports.txt"
    script.write_text(_MAIN_SCRIPT, encoding="utf-8")
    run = subprocess.run([sys.executable, str(script), str(source), str(marks)], capture_output=True, text=True,
                         check=False, env={"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "2 producer processes" in run.stdout
    assert marks.read_text().splitlines() == ["__main__"]
