"""A Spark standalone cluster on this machine: a master and workers, each its own JVM.

Started from the installed PySpark's own classes (``bin/spark-class
org.apache.spark.deploy.master.Master`` and ``...worker.Worker``) on free ports, in
a folder of their own, and stopped after: the tests and ``make bench-derivatives``
run the Spark jobs on it as on any cluster (IMAGELAKE_SPARK_MODE=cluster). The
daemons get a clean environment, what a cluster node has (Java, Spark, cloud
credentials) and nothing of this checkout or its venv, so an executor that relied on
the driver's disk or interpreter would fail here as it would on a real cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagelake.settings import spark_home
from infra.local.stack import Service, StackError, free_port, java, spawn, stop_all, wait_for_port

#: Worker settings: delete a finished application's folders (each executor unpacks the environment
#: archive into its own) soon, not after Spark's default of a week.
WORKER_OPTS = (
    "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.interval=60 "
    "-Dspark.worker.cleanup.appDataTtl=120"
)
#: The master's and workers' JVMs: small and quick to start (they only schedule; executors are apart).
DAEMON_JAVA_OPTS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"
DAEMON_MEMORY = "256m"


@dataclass
class SparkCluster:
    """A running standalone cluster; ``workers[i]`` is None once stopped or killed for good."""

    root: Path
    master: Service
    master_ui_port: int
    cores: int
    memory: str
    env: dict[str, str]
    workers: list[Service | None] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master.port}"

    def worker_dir(self, index: int) -> Path:
        """Where worker ``index`` runs its executors (``<app id>/<executor id>/`` below)."""
        return self.root / f"worker-{index}"

    def state(self) -> dict[str, Any]:
        """The master's view (its web UI's JSON): workers, applications, cores in use."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.master_ui_port}/json/", timeout=5) as answer:
            return json.loads(answer.read())

    def alive_workers(self) -> int:
        """Workers of this cluster's running JVMs that the master counts alive (a killed one may
        still be listed until the master has noticed)."""
        ports = {w.port for w in self.workers if w is not None}
        return sum(1 for w in self.state()["workers"] if w["state"] == "ALIVE" and w["port"] in ports)

    def wait_for_workers(self, count: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.alive_workers() >= count:
                    return
            except OSError:
                pass  # the master's UI is still starting
            time.sleep(0.3)
        raise StackError(
            f"{count} Spark workers did not register with {self.master_url} within {timeout_s:.0f}s"
        )

    def start_worker(self, index: int) -> Service:
        """Start worker ``index`` (again, after a kill: a new JVM on new ports, the same folder)."""
        folder = self.worker_dir(index)
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        command = [
            *_spark_class("org.apache.spark.deploy.worker.Worker"),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--webui-port", str(free_port()),
            "--cores", str(self.cores),
            "--memory", self.memory,
            "--work-dir", str(folder),
            self.master_url,
        ]  # fmt: skip
        env = {**self.env, "SPARK_WORKER_OPTS": WORKER_OPTS, "SPARK_LOCAL_DIRS": str(folder / "local")}
        worker = spawn(
            f"spark-worker-{index}", command, port, self.root / f"worker-{index}.log", env=env, cwd=folder
        )
        wait_for_port(worker, 60)
        while len(self.workers) <= index:
            self.workers.append(None)
        self.workers[index] = worker
        return worker

    def kill_worker(self, index: int) -> None:
        """Kill worker ``index`` at once with everything it started (its executors and their
        Pythons: one process group), as a lost machine."""
        worker = self.workers[index]
        if worker is not None:
            worker.kill()
            self.workers[index] = None

    def stop(self) -> None:
        stop_all([*(w for w in self.workers if w is not None), self.master])
        self.workers = []


def node_environment(root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a cluster node's daemons see: Java, Spark, a home and conf folder of their own, and
    ``extra`` (the node's cloud credentials, say); no PYTHONPATH, no venv on PATH."""
    java_bin = str(Path(java()).parent)
    conf = root / "conf"
    conf.mkdir(parents=True, exist_ok=True)  # empty: no spark-defaults or spark-env from elsewhere
    env = {
        "PATH": os.pathsep.join([java_bin, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(conf),
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_DAEMON_JAVA_OPTS": DAEMON_JAVA_OPTS,
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
    }
    if os.environ.get("JAVA_HOME"):
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return {**env, **(extra or {})}


def _spark_class(main_class: str) -> list[str]:
    return [str(spark_home() / "bin" / "spark-class"), main_class]


def start_spark_cluster(
    root: Path,
    workers: int = 2,
    cores: int = 1,
    memory: str = "1g",
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120,
) -> SparkCluster:
    """A master and ``workers`` workers of ``cores`` cores and ``memory`` each, all registered;
    ``env``: what else the nodes' environment holds (credentials)."""
    root.mkdir(parents=True, exist_ok=True)
    port, ui_port = free_port(), free_port()
    node_env = node_environment(root, env)
    command = [
        *_spark_class("org.apache.spark.deploy.master.Master"),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--webui-port", str(ui_port),
    ]  # fmt: skip
    master = spawn("spark-master", command, port, root / "master.log", env=node_env, cwd=root)
    cluster = SparkCluster(root, master, ui_port, cores, memory, node_env)
    try:
        wait_for_port(master, timeout_s)
        for index in range(workers):
            cluster.start_worker(index)
        cluster.wait_for_workers(workers, timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def remove(cluster: SparkCluster) -> None:
    """Stop the cluster and delete its folder (executors' copies of the environment included)."""
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)
