"""Property-based tests of the finance API generated from its own OpenAPI document
(schemathesis): whatever the parameters, a running `ledger serve` never answers 5xx.

Bounded so CI stays fast: a few examples per operation, no shrinking beyond hypothesis'
defaults, against the embedded SQLite store (the PostgreSQL path is the same code under
`test_finance_api.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.finance_desk import (
    HTTP_TIMEOUT_S,
    TENANTS,
    ingest,
    issue_keys,
    serving,
    simulated_day,
)

pytestmark = pytest.mark.integration
# Examples per API operation: 12 operations x this stays within a minute on a busy box.
EXAMPLES_PER_OPERATION = 15
KEYS: dict[str, str] = {}


@pytest.fixture(scope="module")
def finance_openapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.Schema]:
    directory = tmp_path_factory.mktemp("openapi")
    store_url = f"sqlite:///{directory / 'evledger.db'}"
    ingest(simulated_day(directory), store_url)
    KEYS.update(issue_keys(store_url))
    with serving(store_url, directory / "serve.log") as base_url:
        # The document's location gives schemathesis the server's base URL.
        yield schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def test_no_parameters_make_the_api_fail_with_5xx(finance_openapi: schemathesis.Schema
                                                  ) -> None:
    # Driven by hand (hypothesis over each operation's strategy) rather than through
    # schemathesis' pytest plugin, which does not follow pytest's newest node API.
    key = KEYS[TENANTS[0]]
    operations = [result.ok() for result in finance_openapi.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def never_5xx(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"X-API-Key": key}, checks=[not_a_server_error],
                                   timeout=HTTP_TIMEOUT_S)

        never_5xx()
