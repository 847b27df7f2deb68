"""What is checked before a job is submitted to a cluster, so that a fault there fails at once, says
what to do, and leaves nothing half-written: the master answers, and the environment archive is there
and fits the driver's Python.

Without these checks a stopped master costs a minute of spark-submit's registration retries before a
generic "All masters are unresponsive", and an archive built for another Python fails every task of a
job already running.
"""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

from imagelake.batch.packed_env import PackedEnv, PackedEnvError, check_runs_with, read_archive
from imagelake.settings import SPARK_PACKAGE_NAME, spark_job_file

#: The port a master URL implies when it names none.
DEFAULT_PORTS = {"spark": 7077, "mesos": 5050, "https": 443, "http": 80}


class MasterUnreachable(ConnectionError):
    """No address of the Spark master accepts a connection."""


def master_addresses(master: str) -> list[tuple[str, int]]:
    """The (host, port) pairs a master URL names: ``spark://a:7077,b:7077`` (standalone, with
    standbys), ``k8s://https://api:443`` (the Kubernetes API server), ``mesos://h:5050``. ``yarn``
    names none: the cluster is found through HADOOP_CONF_DIR."""
    scheme, sep, rest = master.partition("://")
    if not sep:
        return []
    if scheme == "k8s":
        inner = rest if "://" in rest else f"https://{rest}"
        parsed = urlparse(inner)
        return [(parsed.hostname or "", parsed.port or DEFAULT_PORTS.get(parsed.scheme, 443))]
    addresses = []
    for part in rest.split("/")[0].split(","):
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
        addresses.append((host, int(port) if port else DEFAULT_PORTS.get(scheme, 7077)))
    return addresses


def check_master(master: str, timeout_s: float = 3.0) -> None:
    """Raise :class:`MasterUnreachable` unless some address of ``master`` accepts a connection."""
    addresses = master_addresses(master)
    errors = []
    for host, port in addresses:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    if addresses:
        raise MasterUnreachable(
            f"the Spark master {master} is not reachable ({'; '.join(errors)}); nothing was submitted. "
            "Start the master, or set IMAGELAKE_SPARK_MASTER to the cluster's master URL"
        )


def local_folder(code_uri: str) -> Path | None:
    """The folder a code URI names on this machine (a path or ``file://``), or None for a URI the
    executors fetch themselves (``https://``, ``hdfs://``, ``local:`` inside an image)."""
    parsed = urlparse(code_uri)
    if parsed.scheme == "":
        return Path(code_uri).resolve()
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).resolve()
    return None


@lru_cache(maxsize=8)
def _manifest(archive: str, size: int, mtime_ns: int) -> PackedEnv:
    """The archive's manifest, read once per version of the file (reading scans the archive)."""
    return read_archive(Path(archive))


def check_package(folder: Path, job: str, driver_python: str) -> PackedEnv:
    """The package in ``folder`` (``make spark-package``'s output) holds the job's entry point and an
    environment archive built for the driver's Python; raises :class:`PackedEnvError` otherwise."""
    entry_point = folder / spark_job_file(job)
    archive = folder / SPARK_PACKAGE_NAME
    if not archive.is_file() or not entry_point.is_file():
        missing = archive if not archive.is_file() else entry_point
        raise PackedEnvError(
            f"the Spark package in {folder} has no {missing.name} ({missing}): run `make spark-package` "
            "(it writes the archive and spark_jobs/), or point IMAGELAKE_SPARK_CODE_URI at the folder "
            "that holds them"
        )
    stat = archive.stat()
    env = _manifest(str(archive), stat.st_size, stat.st_mtime_ns)
    check_runs_with(env, archive, driver_python)
    return env
