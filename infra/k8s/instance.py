"""The Dagster instance (``dagster.yaml``) that the official Helm chart renders from our values.

The chart cannot be downloaded or rendered here, so the part of its
``configmap-instance.yaml`` that our values reach is transcribed below (chart
1.13: scheduler, Postgres storages, run launcher, run coordinator, compute logs,
run monitoring, run retries, concurrency, telemetry). Tests import every module
it names in the locked deploy environment, and a production-mode stack on this
machine can run on the same settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

VALUES = Path(__file__).resolve().parent / "dagster" / "values.yaml"


def load_values(path: Path = VALUES) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _postgres(values: Mapping[str, Any]) -> dict[str, Any]:
    pg = values["postgresql"]
    return {
        "postgres_db": {
            "username": pg["postgresqlUsername"],
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": pg["postgresqlHost"],
            "db_name": pg["postgresqlDatabase"],
            "port": pg["service"]["port"],
            "params": pg.get("postgresqlParams") or {},
            **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
        }
    }


def _run_launcher(values: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    launcher = values["runLauncher"]
    if launcher["type"] != "K8sRunLauncher":
        raise ValueError(f"runLauncher.type {launcher['type']!r}: only K8sRunLauncher is transcribed")
    k8s = launcher["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or namespace,
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}]
        + [ref["name"] for ref in k8s.get("envConfigMaps") or []],
    }
    if k8s.get("envSecrets"):
        config["env_secrets"] = [ref["name"] for ref in k8s["envSecrets"]]
    for key, out in (("envVars", "env_vars"), ("volumeMounts", "volume_mounts"), ("volumes", "volumes")):
        if k8s.get(key):
            config[out] = k8s[key]
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def _compute_logs(values: Mapping[str, Any]) -> dict[str, Any]:
    manager = values["computeLogManager"]
    if manager["type"] != "S3ComputeLogManager":
        raise ValueError(
            f"computeLogManager.type {manager['type']!r}: only S3ComputeLogManager is transcribed"
        )
    s3 = manager["config"]["s3ComputeLogManager"]
    names = {"bucket": "bucket", "prefix": "prefix", "endpointUrl": "endpoint_url", "localDir": "local_dir"}
    config = {out: s3[key] for key, out in names.items() if s3.get(key)}
    return {"module": "dagster_aws.s3.compute_log_manager", "class": "S3ComputeLogManager", "config": config}


def render_instance(values: Mapping[str, Any], namespace: str = "imagelake") -> dict[str, Any]:
    """``dagster.yaml`` as the chart renders it from ``values`` (the keys our values use)."""
    storage = _postgres(values)
    instance: dict[str, Any] = {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": storage,
        },
        "run_launcher": _run_launcher(values, namespace),
        "run_storage": {
            "module": "dagster_postgres.run_storage",
            "class": "PostgresRunStorage",
            "config": storage,
        },
        "event_log_storage": {
            "module": "dagster_postgres.event_log",
            "class": "PostgresEventLogStorage",
            "config": storage,
        },
    }
    daemon = values.get("dagsterDaemon") or {}
    coordinator = daemon.get("runCoordinator") or {}
    if daemon.get("enabled") and coordinator.get("enabled"):
        if coordinator["type"] != "QueuedRunCoordinator":
            raise ValueError(
                f"runCoordinator.type {coordinator['type']!r}: only QueuedRunCoordinator is transcribed"
            )
        queued = (coordinator.get("config") or {}).get("queuedRunCoordinator") or {}
        names = {
            "maxConcurrentRuns": "max_concurrent_runs",
            "dequeueIntervalSeconds": "dequeue_interval_seconds",
            "dequeueUseThreads": "dequeue_use_threads",
            "dequeueNumWorkers": "dequeue_num_workers",
        }
        instance["run_coordinator"] = {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            **(
                {"config": config}
                if (config := {out: queued[k] for k, out in names.items() if queued.get(k) is not None})
                else {}
            ),
        }
    instance["compute_logs"] = _compute_logs(values)
    monitoring = daemon.get("runMonitoring") or {}
    if daemon.get("enabled") and monitoring.get("enabled"):
        instance["run_monitoring"] = {
            "enabled": True,
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            **({"max_resume_run_attempts": v} if (v := monitoring.get("maxResumeRunAttempts")) else {}),
            **({"poll_interval_seconds": v} if (v := monitoring.get("pollIntervalSeconds")) else {}),
        }
    retries = daemon.get("runRetries") or {}
    if daemon.get("enabled") and retries.get("enabled"):
        instance["run_retries"] = {"enabled": True}
        if retries.get("maxRetries"):
            instance["run_retries"]["max_retries"] = retries["maxRetries"]
        if retries.get("retryOnAssetOrOpFailure") is not None:
            instance["run_retries"]["retry_on_asset_or_op_failure"] = retries["retryOnAssetOrOpFailure"]
    concurrency = values.get("concurrency") or {}
    pools = concurrency.get("pools") or {}
    if pools.get("defaultLimit") is not None:
        instance.setdefault("concurrency", {})["pools"] = {"default_limit": pools["defaultLimit"]}
    runs = concurrency.get("runs") or {}
    if runs.get("maxConcurrentRuns") is not None:
        instance.setdefault("concurrency", {})["runs"] = {"max_concurrent_runs": runs["maxConcurrentRuns"]}
    instance["telemetry"] = {"enabled": bool((values.get("telemetry") or {}).get("enabled"))}
    return instance


def configurable_classes(instance: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Each section of ``instance`` that names a class to load: section -> (module, class)."""
    return {
        section: (body["module"], body["class"])
        for section, body in instance.items()
        if isinstance(body, Mapping) and "module" in body and "class" in body
    }
