"""The resolved Definitions as plain data: what a user meets in the UI and what their run history,
schedules and sensors are keyed by.

Taken before a restructuring and compared after it (``test_definitions_snapshot.py``), it shows
the restructuring changed nothing a user can see. Regenerate deliberately, after a change that is
meant to be visible::

    WDT_KINGDEE_UPDATE_SNAPSHOT=1 python -m pytest wdt_kingdee_assets_tests/unit/test_definitions_snapshot.py
"""

from __future__ import annotations

from typing import Any

import dagster as dg


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> dict[str, Any] | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return {
            "type": type(partitions_def).__name__,
            "cron": partitions_def.cron_schedule,
            "timezone": partitions_def.timezone,
            "start": partitions_def.start.isoformat(),
            "end_offset": partitions_def.end_offset,
            "fmt": partitions_def.fmt,
        }
    return {"type": type(partitions_def).__name__}


def _retry(policy: dg.RetryPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "max_retries": policy.max_retries,
        "delay": policy.delay,
        "backoff": policy.backoff.value if policy.backoff else None,
        "jitter": policy.jitter.value if policy.jitter else None,
    }


def _metadata(metadata: dict[str, Any]) -> dict[str, str]:
    return {key: repr(getattr(value, "value", value)) for key, value in sorted(metadata.items())}


def _config_fields(node_def) -> dict[str, Any]:
    """The launchpad config of a step: field name → (type, default)."""
    schema = getattr(node_def, "config_schema", None)
    fields = getattr(schema.as_field().config_type, "fields", None) if schema else None
    return {
        name: [field.config_type.given_name or field.config_type.key, repr(field.default_value)]
        if field.default_provided
        else [field.config_type.given_name or field.config_type.key, None]
        for name, field in sorted((fields or {}).items())
    }


def _assets(repository) -> list[dict[str, Any]]:
    found = []
    for assets_def in repository.asset_graph.assets_defs:
        if not assets_def.keys:
            continue
        op = assets_def.node_def if assets_def.is_executable else None
        for key in sorted(assets_def.keys, key=lambda k: k.to_user_string()):
            spec = assets_def.specs_by_key[key]
            found.append(
                {
                    "key": key.to_user_string(),
                    "group": spec.group_name,
                    "description": spec.description,
                    "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
                    "kinds": sorted(spec.kinds),
                    "tags": dict(sorted(spec.tags.items())),
                    "owners": list(spec.owners),
                    "metadata": _metadata(spec.metadata),
                    "code_version": spec.code_version,
                    "automation_condition": repr(spec.automation_condition),
                    "partitions": _partitions(assets_def.partitions_def),
                    "pool": getattr(op, "pool", None),
                    "retry_policy": _retry(getattr(op, "retry_policy", None)),
                    "io_manager_key": assets_def.get_io_manager_key_for_asset_key(key),
                    "required_resources": sorted(assets_def.required_resource_keys),
                    "config": _config_fields(op),
                }
            )
    return sorted(found, key=lambda a: a["key"])


def _checks(repository) -> list[dict[str, Any]]:
    found = []
    for checks_def in set(repository.asset_checks_defs_by_key.values()):
        for spec in checks_def.check_specs:
            found.append(
                {
                    "asset": spec.asset_key.to_user_string(),
                    "name": spec.name,
                    "description": spec.description,
                    "blocking": spec.blocking,
                    "additional_deps": sorted(
                        dep.asset_key.to_user_string() for dep in spec.additional_deps
                    ),
                    "metadata": _metadata(spec.metadata or {}),
                    "partitions": _partitions(checks_def.partitions_def),
                    "pool": getattr(checks_def.node_def, "pool", None),
                    "retry_policy": _retry(getattr(checks_def.node_def, "retry_policy", None)),
                }
            )
    return sorted(found, key=lambda c: (c["asset"], c["name"]))


def _jobs(repository) -> list[dict[str, Any]]:
    found = []
    for job in repository.get_all_jobs():
        if job.name.startswith("__"):
            continue
        plan_keys = sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys)
        found.append(
            {
                "name": job.name,
                "description": job.description,
                "assets": plan_keys,
                "checks": sorted(
                    f"{check.asset_key.to_user_string()}:{check.name}"
                    for check in job.asset_layer.asset_graph.asset_check_keys
                ),
                "tags": dict(sorted(job.tags.items())),
                "partitions": _partitions(job.partitions_def),
                "executor": job.executor_def.name,
            }
        )
    return sorted(found, key=lambda j: j["name"])


def _schedules(repository) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "name": schedule.name,
                "cron": schedule.cron_schedule,
                "timezone": schedule.execution_timezone,
                "job": schedule.job_name,
                "default_status": schedule.default_status.value,
                "description": schedule.description,
            }
            for schedule in repository.schedule_defs
        ),
        key=lambda s: s["name"],
    )


def _sensors(repository) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "name": sensor.name,
                "type": sensor.sensor_type.value,
                "minimum_interval_seconds": sensor.minimum_interval_seconds,
                "default_status": sensor.default_status.value,
                "description": sensor.description,
                "jobs": sorted(target.job_name for target in sensor.targets),
                "required_resources": sorted(sensor.required_resource_keys),
            }
            for sensor in repository.sensor_defs
        ),
        key=lambda s: s["name"],
    )


def snapshot(defs: dg.Definitions) -> dict[str, Any]:
    repository = defs.get_repository_def()
    return {
        "assets": _assets(repository),
        "checks": _checks(repository),
        "jobs": _jobs(repository),
        "schedules": _schedules(repository),
        "sensors": _sensors(repository),
        "resources": {
            key: type(resource).__name__
            for key, resource in sorted(repository.get_top_level_resources().items())
        },
    }
