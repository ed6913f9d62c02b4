"""Shared pytest fixtures: the simulators run as real HTTP servers on 127.0.0.1."""

import logging
import os
import tempfile

import pytest

# The partitions start at the go-live day, which has no default (beijing.start_date); the
# tests' days all fall after this one. Set before any test module imports the definitions.
os.environ.setdefault("WDT_KINGDEE_START_DATE", "2024-01-01")
# Dagster's retries of a failed API step, a tenth of a second apart instead of a minute.
os.environ.setdefault("WDT_KINGDEE_STEP_RETRY_DELAY_SECONDS", "0.1")
# The machine-wide API budgets of this test session (and of the processes its tests start), not
# of whatever else syncs on the machine.
os.environ.setdefault("WDT_KINGDEE_BUDGET_DIR", tempfile.mkdtemp(prefix="wdt-kingdee-budget-"))

pytest_plugins = [
    "wdt_kingdee_assets_tests.fixtures.wdt",
    "wdt_kingdee_assets_tests.fixtures.kingdee",
    "wdt_kingdee_assets_tests.fixtures.pipeline",
]


@pytest.fixture(autouse=True)
def logging_errors_fail(monkeypatch):
    """A log call whose message cannot be formatted fails the test instead of printing a
    traceback and going on: in the daemon such an error broke a sensor's tick."""

    def fail(handler: logging.Handler, record: logging.LogRecord) -> None:
        raise  # the formatting error being handled

    monkeypatch.setattr(logging.Handler, "handleError", fail)
