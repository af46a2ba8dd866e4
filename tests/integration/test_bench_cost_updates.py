"""`ledger bench cost-updates --end-to-end`: the day and the stops through the running
services with the tenants' cost updates on and off; reported, never gated on a ratio (the
figures depend on the machine and its load; docs/pricing.md has the measured ones)."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_bench_workload import bench

pytestmark = pytest.mark.integration


def test_end_to_end_runs_the_day_and_the_stops_with_and_without_updates(
    database_url: str, kafka_bootstrap_servers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = bench("cost-updates", "--sessions", "3", "--rounds", "1", "--end-to-end",
                   "--stop-samples", "2", "--json", env={
                       "LEDGER_STORE": database_url,
                       "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers})
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    end_to_end = figures["end_to_end"]
    with capsys.disabled():  # reported in the test output, never compared with a target
        print("\nledger bench cost-updates --end-to-end --sessions 3: " + json.dumps(
            {k: v for k, v in end_to_end.items() if not k.startswith("day_")}))
    for key in ("end_to_end_ratio_with", "end_to_end_ratio_without", "end_to_end_cost_ratio",
                "stop_latency_p99_ms_with", "stop_latency_p99_ms_without",
                "stop_latency_cost_ratio"):
        assert isinstance(end_to_end[key], float) and end_to_end[key] > 0, (key, end_to_end)
    with_updates, without = end_to_end["day_with"], end_to_end["day_without"]
    assert with_updates["cost_updates_sent"] > 0 and without["cost_updates_sent"] == 0
    # The same day either way: every record and every PSP answer applied.
    assert with_updates["consumed"] == without["consumed"] > 0
    assert with_updates["stop_latency"]["samples"] == without["stop_latency"]["samples"] == 2
