"""The production-mode stack on one machine: ``IMAGELAKE_ENV=prod`` end to end.

Our processes run as the container runs them (Dockerfile, Helm values): the
upload API is ``python -m imagelake.api``; each code location is served by
``dagster api grpc`` with the values' own arguments; the Dagster daemon and
webserver load a workspace of those gRPC servers; the instance is the one the
chart renders from ``infra/k8s/dagster/values.yaml``, with the substitutions
``infra/local/prod_instance.py`` names. Where AWS or Kubernetes cannot run
here, a stand-in does (``STAND_INS``). ``make dev-prod`` (infra/local/prod_dev.py),
the production-mode end-to-end tests and ``make bench-load`` all start it
through :class:`ProdStack`, one service at a time, so a test can stop and
restart any one of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from imagelake.catalog import Catalog
from imagelake.realtime.kafka import KafkaConnection, ensure_topic
from imagelake.settings import PROJECT_ROOT, load_settings
from infra.k8s.instance import load_values
from infra.local.moto_s3 import CREDENTIALS, ensure_buckets, start_moto
from infra.local.postgres import PostgresServer, start_postgres
from infra.local.prod_instance import CodeServer, code_servers, prod_mode_instance, workspace
from infra.local.stack import (
    Service,
    StackError,
    free_ports,
    spawn,
    start_dynamodb,
    start_kafka,
    stop_all,
    wait_for_port,
)

#: What stands in for each production service that cannot run on this machine (README, "Production mode").
STAND_INS: Mapping[str, str] = {
    "Amazon S3 (lake and ops buckets)": "moto's S3 server over HTTP (objects in memory)",
    "Amazon DynamoDB": "DynamoDB Local (tables in memory, as moto's objects)",
    "Amazon MSK (IAM auth)": "Apache Kafka 4 in KRaft mode, plaintext",
    "Amazon RDS for PostgreSQL": "PostgreSQL 17 from Maven Central, TLS and password auth as production",
    "Kubernetes run pods (K8sRunLauncher)": (
        "DefaultRunLauncher: the code server starts each run as a process, forked from one that imported "
        "the location"
    ),
    "EMR Serverless": "spark-submit --master local[*] against the same S3 lake (IMAGELAKE_SPARK_MODE=local)",
    "Amazon Redshift (Spectrum over the lake)": "DuckDB over the same Parquet files on S3 (dbt target local)",
}

#: The production-mode processes' bytecode cache (see ``ProdStack.environment``).
PYCACHE = PROJECT_ROOT / ".cache" / "pycache"
LAKE_BUCKET = "imagelake-lake"
OPS_BUCKET = "imagelake-ops"
REGION = "us-east-1"
#: The services :meth:`ProdStack.start` starts, in order; stopped in reverse.
BACKING = ("postgres", "kafka", "dynamodb", "s3")
OURS = ("daemon", "webserver", "api")
#: The batch work (location, kind, name): the Spark schedules and the warehouse's refresh. The
#: production-mode tests and the load benchmark pause it (``ProdStack.set_automation``): on two cores its
#: runs would compete with what they measure (EMR and Redshift do that work in production).
BATCH_WORK = (
    ("imagelake", "schedule", "derivatives_hourly"),
    ("imagelake", "schedule", "compaction_daily"),
    ("imagelake", "schedule", "garbage_collection_daily"),
    ("warehouse", "schedule", "warehouse_hourly_schedule"),
    ("warehouse", "sensor", "warehouse_refresh_sensor"),
)
#: Dagster's storages in PostgreSQL (run, event log, schedule): the webserver pools a connection for each.
STORAGES = 3


@dataclass(frozen=True)
class ProdPorts:
    kafka: int
    dynamodb: int
    s3: int
    postgres: int
    api: int
    ui: int
    #: One per code location (the Helm values' user deployments), by location name.
    code: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def free(cls, servers: list[CodeServer]) -> ProdPorts:
        """Distinct free ports for every service (chosen together, so no two are the same)."""
        kafka, dynamodb, s3, postgres, api, ui, *code = free_ports(6 + len(servers))
        return cls(
            kafka, dynamodb, s3, postgres, api, ui, {s.name: p for s, p in zip(servers, code, strict=True)}
        )

    def all(self) -> frozenset[int]:
        """Every port of the stack: what another listener (a test's relay) must not take before the
        services have bound them."""
        return frozenset(
            {self.kafka, self.dynamodb, self.s3, self.postgres, self.api, self.ui, *self.code.values()}
        )


class ProdStack:
    """Every process of the production-mode stack, each started and stopped on its own.

    ``s3_endpoint`` is where our processes reach S3 (default: moto's own port); a test puts a
    relay there to take S3 away and back. ``postgres_home`` holds the PostgreSQL cluster
    (default ``<data_dir>/postgres``): as root it must be reachable by ``nobody``.
    """

    def __init__(
        self,
        data_dir: Path,
        ports: ProdPorts,
        *,
        postgres_home: Path | None = None,
        s3_endpoint: str | None = None,
        env: Mapping[str, str] | None = None,
        keep_fds: tuple[int, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.values = load_values()
        self.code_servers = code_servers(self.values)
        self.postgres_home = postgres_home or data_dir / "postgres"
        self.moto_endpoint = f"http://127.0.0.1:{ports.s3}"
        self.s3_endpoint = s3_endpoint or self.moto_endpoint
        self.extra_env = dict(env or {})
        self.keep_fds = keep_fds
        self.logs = data_dir / "logs"
        self.dagster_home = data_dir / "dagster"
        self.services: dict[str, Service] = {}
        self.postgres: PostgresServer | None = None

    # -- where things are -----------------------------------------------------------------------
    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ports.ui}"

    def environment(self) -> dict[str, str]:
        """The environment of every process of ours: what the ConfigMap and Secrets give the pods."""
        if self.postgres is None:
            raise StackError("PostgreSQL is not started: its password is part of the environment")
        bin_dir = Path(sys.executable).parent
        inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        return {
            **inherited,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            # The image's bytecode is compiled at build (Dockerfile: uv sync --compile-bytecode). Without
            # it every process Dagster starts for a run compiles each module it imports again, which was
            # most of a run's CPU (docs/benchmarks.md, bench-load): a bytecode cache stands in for it.
            "PYTHONPYCACHEPREFIX": str(PYCACHE),
            **CREDENTIALS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "IMAGELAKE_ENV": "prod",
            "IMAGELAKE_DATA_DIR": str(self.data_dir),
            "IMAGELAKE_LAKE_URL": f"s3://{LAKE_BUCKET}",
            "IMAGELAKE_S3_ENDPOINT": self.s3_endpoint,
            "IMAGELAKE_PIPES_BUCKET": OPS_BUCKET,
            "IMAGELAKE_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.ports.kafka}",
            "IMAGELAKE_KAFKA_AUTH": "none",
            "IMAGELAKE_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{self.ports.dynamodb}",
            "IMAGELAKE_API_KEYS": os.environ.get("IMAGELAKE_API_KEYS") or "dev-key:dev",
            "IMAGELAKE_API_HOST": "127.0.0.1",
            "IMAGELAKE_API_PORT": str(self.ports.api),
            "IMAGELAKE_UI_PORT": str(self.ports.ui),
            "IMAGELAKE_DBT_TARGET": "local",
            "IMAGELAKE_SPARK_MODE": "local",
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_PG_PASSWORD": self.postgres.password,
            **self.extra_env,
        }

    def settings(self):
        """The settings our processes resolve from :meth:`environment`."""
        return load_settings(self.environment())

    # -- backing services (stand-ins) -----------------------------------------------------------
    def start_postgres(self) -> PostgresServer:
        self.postgres = start_postgres(
            self.postgres_home,
            self.ports.postgres,
            self.logs / "postgres.log",
            user=self.values["postgresql"]["postgresqlUsername"],
            database=self.values["postgresql"]["postgresqlDatabase"],
            keep_fds=self.keep_fds,
        )
        self.services["postgres"] = self.postgres.service
        return self.postgres

    def start_backing_services(self) -> None:
        self.start_postgres()
        self.services["kafka"] = start_kafka(
            self.data_dir / "kafka", self.ports.kafka, keep_fds=self.keep_fds
        )
        # In memory: moto forgets the lake on exit, so the catalog must not outlive it (``reset``), and
        # DynamoDB Local's SQLite file only slowed each write (docs/benchmarks.md, bench-load).
        self.services["dynamodb"] = start_dynamodb(
            None,
            self.ports.dynamodb,
            self.logs / "dynamodb.log",
            keep_fds=self.keep_fds,
        )
        self.services["s3"] = start_moto(self.ports.s3, self.logs / "moto-s3.log", keep_fds=self.keep_fds)
        ensure_buckets(self.moto_endpoint, [LAKE_BUCKET, OPS_BUCKET], REGION)
        settings = self.settings()
        ensure_topic(
            KafkaConnection.from_settings(settings), settings.uploads_topic, settings.uploads_topic_partitions
        )
        Catalog.from_settings(settings).ensure_table()

    # -- Dagster and the API, as the container runs them --------------------------------------------
    def write_dagster_config(self) -> None:
        """``dagster.yaml`` (the chart's instance, substituted) and the workspace of gRPC servers."""
        assert self.postgres is not None
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        instance = prod_mode_instance(self.values, self.postgres.port, OPS_BUCKET, self.s3_endpoint)
        (self.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance, sort_keys=False))
        (self.dagster_home / "workspace.yaml").write_text(
            yaml.safe_dump(workspace(self.code_servers, self.ports.code), sort_keys=False)
        )

    def migrate(self) -> None:
        """Create (or upgrade) Dagster's schema once, before the services that use it start."""
        done = subprocess.run(
            [str(Path(sys.executable).with_name("dagster")), "instance", "migrate"],
            env=self.environment(),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise StackError(f"dagster instance migrate failed:\n{done.stdout}{done.stderr}")

    def _ours(self, name: str, cmd: list[str], port: int) -> Service:
        service = spawn(
            name,
            cmd,
            port,
            self.logs / f"{name}.log",
            env=self.environment(),
            cwd=PROJECT_ROOT,
            keep_fds=self.keep_fds,
        )
        self.services[name] = service
        return service

    def start_code_servers(self, timeout: float = 240.0) -> None:
        started = [
            self._ours(
                f"code-{s.name}",
                s.command(Path(sys.executable), PROJECT_ROOT, self.ports.code[s.name]),
                self.ports.code[s.name],
            )
            for s in self.code_servers
        ]
        for service in started:
            wait_for_port(service, timeout)

    def start_daemon(self) -> Service:
        workspace_file = str(self.dagster_home / "workspace.yaml")
        cmd = [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", workspace_file]
        return self._ours("daemon", cmd, 0)

    def start_webserver(self, timeout: float = 120.0) -> Service:
        cmd = [
            str(Path(sys.executable).with_name("dagster-webserver")),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.ports.ui),
            "-w",
            str(self.dagster_home / "workspace.yaml"),
        ]
        service = self._ours("webserver", cmd, self.ports.ui)
        wait_for_port(service, timeout)
        return service

    def start_api(self, timeout: float = 60.0) -> Service:
        service = self._ours("api", [sys.executable, "-m", "imagelake.api"], self.ports.api)
        wait_for_port(service, timeout)
        return service

    def set_automation(self, location: str, kind: str, name: str, *, running: bool) -> None:
        """Start or stop a sensor or schedule (``kind``) through the webserver's GraphQL API, as the UI's
        switch does (one request each, where ``dagster sensor stop`` starts a Python and loads the
        workspace)."""
        if kind not in ("sensor", "schedule"):
            raise ValueError(f"kind must be sensor or schedule, not {kind!r}")
        selector = {"repositoryLocationName": location, "repositoryName": "__repository__"}
        if kind == "sensor":
            selector["sensorName"] = name
            find = (
                "query($s: SensorSelector!) { found: sensorOrError(sensorSelector: $s) { __typename "
                "... on Sensor { state: sensorState { id status } } ... on PythonError { message } } }"
            )
            start = "mutation($s: SensorSelector!) { done: startSensor(sensorSelector: $s) { __typename } }"
            stop = "mutation($id: String!) { done: stopSensor(id: $id) { __typename } }"
        else:
            selector["scheduleName"] = name
            find = (
                "query($s: ScheduleSelector!) { found: scheduleOrError(scheduleSelector: $s) { __typename "
                "... on Schedule { state: scheduleState { id status } } ... on PythonError { message } } }"
            )
            start = (
                "mutation($s: ScheduleSelector!) { done: startSchedule(scheduleSelector: $s) { __typename } }"
            )
            stop = "mutation($id: String!) { done: stopRunningSchedule(id: $id) { __typename } }"
        found = self.graphql(find, {"s": selector})["found"]
        if "state" not in found:
            raise StackError(f"no {kind} {name} in code location {location}: {found}")
        if (found["state"]["status"] == "RUNNING") == running:
            return
        done = (
            self.graphql(start, {"s": selector})
            if running
            else self.graphql(stop, {"id": found["state"]["id"]})
        )
        if done["done"]["__typename"] in ("PythonError", "UnauthorizedError"):
            raise StackError(f"could not {'start' if running else 'stop'} {kind} {name}: {done}")

    def graphql(self, query: str, variables: dict) -> dict:
        """One GraphQL request to the webserver. The webserver keeps one pooled connection per storage
        (runs, events, schedules) and does not test it before use: after PostgreSQL restarted, the first
        request on each stale connection fails with an OperationalError and the next one reconnects.
        Such an answer is asked again, once per storage."""
        import httpx

        for _ in range(STORAGES + 1):
            answer = httpx.post(
                f"{self.ui}/graphql", json={"query": query, "variables": variables}, timeout=60
            )
            text = answer.text
            if "OperationalError" not in text:
                break
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        if answer.status_code != 200 or body.get("errors"):
            raise StackError(
                f"the webserver's GraphQL API answered {answer.status_code} to {query.split('(')[0]}: "
                f"{body.get('errors') or text[:2000]}"
            )
        return body["data"]

    def start(self, *, webserver: bool = True) -> None:
        """Everything, in dependency order; on a failure, what started is stopped again."""
        try:
            self.logs.mkdir(parents=True, exist_ok=True)
            self.start_backing_services()
            self.write_dagster_config()
            self.migrate()
            self.start_code_servers()
            self.start_daemon()
            if webserver:
                self.start_webserver()
            self.start_api()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Ours first (the API, the webserver, the daemon, the code servers and their runs), then the
        stand-ins they talk to."""
        ours = [s for n, s in self.services.items() if n not in BACKING]
        stop_all(list(reversed(ours)))
        stop_all([self.services[n] for n in BACKING if n in self.services])

    def dead(self) -> list[tuple[str, int]]:
        """Services that have exited: (name, exit code)."""
        return [(n, code) for n, s in self.services.items() if (code := s.exit_code) is not None]

    def reset(self) -> None:
        """Remove the state a previous stack left in ``data_dir`` (moto forgets its objects on exit, so
        Kafka, DynamoDB, PostgreSQL and the warehouse must not remember theirs)."""
        for name in ("kafka", "dynamodb", "dagster", "logs", "warehouse.duckdb", "warehouse.duckdb.lock"):
            path = self.data_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        shutil.rmtree(self.postgres_home, ignore_errors=True)
