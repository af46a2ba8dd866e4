"""The fault suite's seed and its record of every fault injected.

One seed drives every random choice of the suite (the simulated day, kill points, which
process restarts in its old consumer group, the order of redelivery): `--faults-seed N`
(registered in tests/conftest.py: pytest reads options only from the top conftest), else
$EVLEDGER_FAULTS_SEED, else DEFAULT_SEED. Each test draws from its own `random.Random`
seeded with the suite seed and the test's name, so a test replays alone with the same seed.

Every injection is printed as one line (`FAULT seed=.. test=.. fault=.. ...`) and counted;
at the end of the session the counts go to a JSON summary (`faults-summary.json` in pytest's
base temporary directory, or $EVLEDGER_FAULTS_SUMMARY) and, with the command that replays
the run, to the terminal summary: docs/reliability.md's table is copied from it.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.faults.seed import faults_seed_from

SUMMARY_ENV_VAR = "EVLEDGER_FAULTS_SUMMARY"
SUMMARY_FILE = "faults-summary.json"


@dataclass
class InjectionLog:
    seed: int
    counts: Counter[str] = field(default_factory=Counter)
    checks: dict[str, set[str]] = field(default_factory=dict)
    tests: dict[str, str] = field(default_factory=dict)

    def injected(self, test: str, fault: str, **detail: object) -> None:
        self.counts[fault] += 1
        self.tests.setdefault(fault, test)
        described = " ".join(f"{k}={v}" for k, v in detail.items())
        print(f"FAULT seed={self.seed} test={test} fault={fault} {described}", flush=True)

    def checked(self, fault: str, *what: str) -> None:
        self.checks.setdefault(fault, set()).update(what)

    def summary(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "replay": f".venv/bin/pytest tests/faults --faults-seed {self.seed}",
            "faults": {
                fault: {"injected": count, "test": self.tests[fault],
                        "checked": sorted(self.checks.get(fault, ()))}
                for fault, count in sorted(self.counts.items())
            },
            "total_injected": sum(self.counts.values()),
        }


_log: InjectionLog | None = None


@pytest.fixture(scope="session")
def faults_seed(request: pytest.FixtureRequest) -> int:
    return faults_seed_from(request.config.getoption("faults_seed"), os.environ)


@pytest.fixture(scope="session")
def injections(faults_seed: int) -> InjectionLog:
    global _log
    if _log is None:
        _log = InjectionLog(faults_seed)
        print(f"fault suite seed {faults_seed}: replay with "
              f".venv/bin/pytest tests/faults --faults-seed {faults_seed}", flush=True)
    return _log


def rng_for(seed: int, name: str) -> random.Random:
    """The random source of one test (or module): the suite seed and its name."""
    return random.Random(f"{seed}:{name}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _log is None:
        return
    summary = _log.summary()
    target = os.environ.get(SUMMARY_ENV_VAR)
    path = Path(target) if target else (
        terminalreporter.config._tmp_path_factory.getbasetemp() / SUMMARY_FILE  # type: ignore[attr-defined]
    )
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    terminalreporter.section("fault suite")
    terminalreporter.write_line(f"seed {_log.seed}; replay: {summary['replay']}")
    for fault, count in sorted(_log.counts.items()):
        terminalreporter.write_line(f"  {fault}: {count}")
    terminalreporter.write_line(f"summary written to {path}")
