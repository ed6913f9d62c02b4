"""The suite's guard (conftest.py): a log call whose arguments do not fit its message fails."""

from __future__ import annotations

import logging

import pytest


def test_a_log_message_that_cannot_be_formatted_fails_the_test():
    with pytest.raises(TypeError):
        logging.getLogger("wdt_kingdee_assets.probe").warning("%d stock-outs", "twelve")
