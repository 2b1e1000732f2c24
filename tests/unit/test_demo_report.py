"""`make demo`'s quarantine report: every quarantined rule with its count, every other declared rule with why."""

from __future__ import annotations

from collections import Counter

import pytest

from demo import quarantine_lines
from quantdbops.registry import declared_rules, migratable_tables
from sample import generate


@pytest.fixture(scope="module")
def counts(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], int]:
    """What the demo reads from ops.migration_rejects after a load of a defects sample (the manifest's labels)."""
    manifest = generate(tmp_path_factory.mktemp("demo") / "s.db", tickers_per_region=2, days=60, defects=True)
    return dict(Counter((e["table"], e["label"]) for e in manifest["planted"] if e["expect"] == "reject"))


def test_every_declared_rule_is_shown_quarantined_or_with_why(counts: dict[tuple[str, str], int]) -> None:
    lines = quarantine_lines(counts)
    declared = [(t.name, r) for t in migratable_tables() for r in declared_rules(t)]
    missing = [(name, r) for name, r in declared if (name, r.label) not in counts]
    assert f"{sum(counts.values()):,} under {len(counts)} rules" in lines[0]
    split = next(i for i, line in enumerate(lines) if line.startswith("\nDeclared rules without"))
    assert f"({len(missing)} of {len(declared)})" in lines[split]
    quarantined, unbroken = (" ".join(" ".join(part).split()) for part in (lines[:split], lines[split:]))  # unwrapped
    for name, label in counts:
        reason, _, detail = label.partition(":")
        assert f" {name} (" in quarantined and detail in quarantined and f"{reason}: " in quarantined, label
    for name, rule in missing:
        assert f"{name}: " in unbroken and rule.detail in unbroken, rule.label
    assert "not planted in this sample" not in unbroken


def test_an_empty_quarantine_says_there_was_nothing_planted() -> None:
    assert "no planted defect" in quarantine_lines({})[0]
