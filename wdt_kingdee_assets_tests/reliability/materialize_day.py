"""Materialize one day's four assets in this process: the victim the crash test kills mid-write,
and each of the racers the lease test starts at once.

``python -m wdt_kingdee_assets_tests.reliability.materialize_day DAY DATA_DIR BATCH_SIZE
[LEASE_WAIT_SECONDS]``, with the SPEC §5 variables in the environment. Without a lease wait the
run uses an ephemeral instance, which keeps the whole run inside one process group, so one SIGKILL
ends it as a power cut would; with one it uses the instance of ``DAGSTER_HOME``, shared with the
other racers, as runs of one deployment share it.
"""

from __future__ import annotations

import sys

import dagster as dg

from wdt_kingdee_assets.definitions import FLOW_DEFS, build_resources
from wdt_kingdee_assets.factory import flow_parts
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT


def main(day: str, data_dir: str, batch_size: int, lease_wait: float | None = None) -> int:
    write = {"batch_size": batch_size}
    if lease_wait is not None:
        write["lease_wait_seconds"] = lease_wait
    instance = dg.DagsterInstance.ephemeral() if lease_wait is None else dg.DagsterInstance.get()
    with instance:
        result = dg.materialize(
            flow_parts(PRODUCTION_STOCKOUT, FLOW_DEFS[PRODUCTION_STOCKOUT.name], checks=False),
            partition_key=day,
            resources=build_resources(data_dir),
            instance=instance,
            run_config={"ops": {"kingdee_write_results": {"config": write}}},
            raise_on_error=False,
        )
    return 0 if result.success else 1


if __name__ == "__main__":
    wait = float(sys.argv[4]) if len(sys.argv) > 4 else None
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), wait))
