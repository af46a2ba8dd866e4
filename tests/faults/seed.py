"""Where the fault suite's seed comes from (used by tests/conftest.py and the suite)."""

from __future__ import annotations

from collections.abc import Mapping

SEED_ENV_VAR = "EVLEDGER_FAULTS_SEED"
# Fixed, so `scripts/test` is the same run every time unless a seed is asked for.
DEFAULT_SEED = 20261130


def faults_seed_from(option: int | None, environ: Mapping[str, str]) -> int:
    """--faults-seed, else $EVLEDGER_FAULTS_SEED, else DEFAULT_SEED."""
    if option is not None:
        return option
    text = environ.get(SEED_ENV_VAR, "")
    if text == "":
        return DEFAULT_SEED
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{SEED_ENV_VAR}={text!r} is not an integer") from None
