"""`ledger report --tenant T`: one tenant's rows, counts and sums; the tenants add up to all."""

from __future__ import annotations

from collections import Counter
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from consumers.cli import main
from consumers.commands.ingest import ingest_file, source_for
from consumers.event_file import write_event_file
from consumers.simulation.scenario import SimulationOptions, simulate
from consumers.store import open_ledger
from projections.report import Report, current_report

LISTS = ("sessions", "invoices", "wallets", "corporate_accounts", "tariffs")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, dict[str, Report]]:
    directory = tmp_path_factory.mktemp("two-tenants")
    day = directory / "day.jsonl"
    write_event_file(day, simulate(SimulationOptions(sessions=24, seed=11, tenants=2,
                                                     faults=True)).lines)
    with closing(open_ledger(f"sqlite:///{directory / 'store.db'}")) as ledger:
        ingest_file(ledger, day, source_for(day))
        everything = current_report(ledger)
        tenants = sorted({s["tenant_id"] for s in everything["sessions"]})
        assert len(tenants) == 2
        return everything, {t: current_report(ledger, t) for t in tenants}


def test_each_tenant_sees_only_its_own_rows_and_together_they_are_everything(
    reports: tuple[Report, dict[str, Report]],
) -> None:
    everything, per_tenant = reports
    for key in LISTS:
        for tenant, report in per_tenant.items():
            assert {row["tenant_id"] for row in report[key]} <= {tenant}, key
        together = sorted((row for r in per_tenant.values() for row in r[key]),
                          key=lambda row: repr(sorted(row.items())))
        assert together == sorted(everything[key], key=lambda row: repr(sorted(row.items())))


def test_counts_and_sums_are_each_tenants_own(
    reports: tuple[Report, dict[str, Report]],
) -> None:
    everything, per_tenant = reports
    parts = list(per_tenant.values())
    assert sum(p["journal"]["entries"] for p in parts) == everything["journal"]["entries"]
    assert sum(p["journal"]["postings"] for p in parts) == everything["journal"]["postings"]
    assert all(Decimal(p["journal"]["sum_of_postings"]) == 0 for p in parts)
    commands: Counter[str] = Counter()
    for p in parts:
        commands.update(p["outbound_commands"]["by_type"])
        assert p["outbound_commands"]["count"] == sum(p["outbound_commands"]["by_type"].values())
    assert dict(commands) == everything["outbound_commands"]["by_type"]
    assert sum(p["sessions_open"] for p in parts) == everything["sessions_open"]
    assert sum(p["refusals"]["count"] for p in parts) == everything["refusals"]["count"]
    # The day's malformed lines name no tenant that could be read: in no tenant's report.
    assert everything["dead_letters"]["count"] >= sum(p["dead_letters"]["count"] for p in parts)


def test_an_unknown_tenant_has_an_empty_report(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 'empty.db'}"
    with closing(open_ledger(store)):
        pass
    assert main(["report", "--store", store, "--tenant", "nobody", "--json"]) == 0
    assert '"sessions": []' in capsys.readouterr().out


@pytest.mark.parametrize("tenant", ["", "a\tb", "x" * 1001])
def test_a_bad_tenant_id_is_a_usage_error(tenant: str, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["report", "--tenant", tenant])
    assert usage.value.code == 2
    assert "not a tenant id" in capsys.readouterr().err
