"""The production-mode stack's Dagster instance and workspace, from the Helm values.

One source: ``infra/k8s/instance.py`` renders the ``dagster.yaml`` the chart
renders from ``infra/k8s/dagster/values.yaml`` (Postgres run, event-log and
schedule storage, the queued run coordinator, run retries, run monitoring,
pools, telemetry). This module takes that instance and substitutes only what
cannot be the same on one machine, each named in ``SUBSTITUTIONS``; a test
holds every other setting equal. The code servers are the chart's user
deployments: each serves its location with the values' own ``dagster api grpc`` arguments, through
``orchestration.code_server`` because here, unlike in Kubernetes, the code server starts the runs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.k8s.instance import render_instance

#: The working directory the values give the code servers (the image's source tree).
IMAGE_WORKDIR = "/opt/imagelake"

#: Where the production-mode instance departs from the rendered Helm values, and why. Nothing else
#: differs (tests/unit/test_prod_instance.py).
SUBSTITUTIONS: Mapping[str, str] = {
    "run_launcher": (
        "DefaultRunLauncher instead of K8sRunLauncher: no Kubernetes here, so each run is a process "
        "its code server starts, forked from one that imported the location (orchestration/code_server.py; "
        "the pod K8s would start runs the same code in the same image)"
    ),
    "compute_logs.config.endpoint_url": "step logs go to the ops bucket on moto's S3 server, not AWS",
    "compute_logs.config.bucket": "the ops bucket of this stack (production sets it at install: docs/deploy.md)",
    "postgres_db.hostname": "the stack's PostgreSQL (infra/local/postgres.py) instead of RDS",
    "postgres_db.port": "the stack's PostgreSQL port",
}


@dataclass(frozen=True)
class CodeServer:
    """One user deployment of the chart: a code location served by ``dagster api grpc``."""

    name: str
    args: tuple[str, ...]

    def command(self, python: Path, project_root: Path, port: int) -> list[str]:
        """The container's ``dagster api grpc`` arguments, run from this checkout on ``port``.

        Through ``orchestration.code_server``: with the DefaultRunLauncher each run is a process the
        server starts, and that module forks them from a process that imported the location once,
        where ``dagster api grpc`` spawns a new interpreter per run (in Kubernetes a run is a pod).
        """
        args = [str(project_root) if a == IMAGE_WORKDIR else a for a in self.args]
        server = [str(python), "-m", "orchestration.code_server", *args]
        return [*server, "--host", "127.0.0.1", "--port", str(port)]


def code_servers(values: Mapping[str, Any]) -> list[CodeServer]:
    deployments = values["dagster-user-deployments"]["deployments"]
    return [CodeServer(d["name"], tuple(d["dagsterApiGrpcArgs"])) for d in deployments]


def prod_mode_instance(
    values: Mapping[str, Any], postgres_port: int, ops_bucket: str, s3_endpoint: str
) -> dict[str, Any]:
    """The chart's instance with ``SUBSTITUTIONS`` applied (the password stays ``DAGSTER_PG_PASSWORD``)."""
    instance = copy.deepcopy(render_instance(values))
    instance["run_launcher"] = {"module": "dagster", "class": "DefaultRunLauncher"}
    logs = instance["compute_logs"]["config"]
    logs["bucket"] = ops_bucket
    logs["endpoint_url"] = s3_endpoint
    for section in ("run_storage", "event_log_storage", "schedule_storage"):
        db = instance[section]["config"]["postgres_db"]
        db["hostname"] = "127.0.0.1"
        db["port"] = postgres_port
    return instance


def workspace(servers: list[CodeServer], ports: Mapping[str, int]) -> dict[str, Any]:
    """The workspace the chart gives the webserver and the daemon: one gRPC server per location."""
    return {
        "load_from": [
            {"grpc_server": {"host": "127.0.0.1", "port": ports[s.name], "location_name": s.name}}
            for s in servers
        ]
    }
