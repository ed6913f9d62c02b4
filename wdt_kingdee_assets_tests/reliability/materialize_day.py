"""Materialize one day's four assets in this process: the victim the crash test kills mid-write.

``python -m wdt_kingdee_assets_tests.reliability.materialize_day DAY DATA_DIR BATCH_SIZE``, with the
SPEC §5 variables in the environment. In-process execution on an ephemeral instance keeps the
whole run inside one process group, so one SIGKILL ends it as a power cut would.
"""

from __future__ import annotations

import sys

import dagster as dg

from wdt_kingdee_assets.definitions import ASSETS, build_resources


def main(day: str, data_dir: str, batch_size: int) -> int:
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            ASSETS,
            partition_key=day,
            resources=build_resources(data_dir),
            instance=instance,
            run_config={"ops": {"kingdee_write_results": {"config": {"batch_size": batch_size}}}},
            raise_on_error=False,
        )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
