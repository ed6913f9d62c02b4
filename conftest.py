"""Shared pytest fixtures: the simulators run as real HTTP servers on 127.0.0.1."""

pytest_plugins = [
    "wdt_kingdee_assets_tests.fixtures.wdt",
    "wdt_kingdee_assets_tests.fixtures.kingdee",
    "wdt_kingdee_assets_tests.fixtures.pipeline",
]
