"""The Spark jobs' packed environment (``make spark-package``): what it says about itself.

The archive is a relocatable venv whose Python runs every task on EMR Serverless
or a cluster's executors. Its manifest (``imagelake-spark-env.json`` at the venv's
root) records the Python it was built with and a digest of what went in (the
lock and the sources), so that:

- the launcher refuses, before anything is submitted, an archive that is missing or
  was built for another Python (PySpark would fail every task with "Python in worker
  has different version" only once the job is running);
- each executor's report names the environment it ran (:func:`running`), which is how
  a test sees that the executors ran the packed environment, not the driver's.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import tarfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

#: The manifest's file name, at the root of the packed venv.
MANIFEST_NAME = "imagelake-spark-env.json"


class PackedEnvError(RuntimeError):
    """The environment archive cannot run the jobs here; the message says why and what to do."""


@dataclass(frozen=True)
class PackedEnv:
    """What an environment archive was built from."""

    #: The Python that built it, ``3.11.7``: the executors run exactly this minor version.
    python: str
    #: ``sysconfig.get_platform()`` of the build machine, ``linux-x86_64``.
    platform: str
    #: sha256 over uv.lock, pyproject.toml and the sources packed (infra/spark_package.py).
    digest: str

    @property
    def python_minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PackedEnv:
        values = json.loads(text)
        return cls(python=values["python"], platform=values["platform"], digest=values["digest"])


def read_archive(archive: Path) -> PackedEnv:
    """The manifest inside an environment archive, read without unpacking it."""
    if not archive.is_file():
        raise PackedEnvError(
            f"the Spark environment archive {archive} does not exist: run `make spark-package` "
            "(it writes the archive and spark_jobs/ there), or point IMAGELAKE_SPARK_CODE_URI at the "
            "folder that holds them"
        )
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.name.lstrip("./") == MANIFEST_NAME and member.isfile():
                    data = tar.extractfile(member)
                    if data is not None:
                        return PackedEnv.from_json(data.read().decode())
    except (tarfile.TarError, OSError, EOFError, ValueError, KeyError) as exc:
        raise PackedEnvError(
            f"the Spark environment archive {archive} cannot be read ({exc}): build it again with "
            "`make spark-package`"
        ) from exc
    raise PackedEnvError(
        f"the Spark environment archive {archive} has no {MANIFEST_NAME}: it was not built by "
        "`make spark-package` (infra/spark_package.py); build it with that"
    )


def check_runs_with(env: PackedEnv, archive: Path, driver_python: str) -> None:
    """Refuse an archive whose Python differs from the driver's (``3.11.2``): PySpark needs the
    driver and the workers on the same minor version, and the archive's binary wheels are built for
    one Python."""
    driver_minor = ".".join(driver_python.split(".")[:2])
    if env.python_minor != driver_minor:
        raise PackedEnvError(
            f"the Spark environment archive {archive} was built for Python {env.python} but the "
            f"driver runs Python {driver_python}: executors would refuse every task. Build it again "
            f"with the driver's Python (`make spark-package` with a {driver_minor} interpreter)"
        )


def running() -> PackedEnv | None:
    """The packed environment this interpreter runs from, or None (a development venv)."""
    manifest = Path(sys.prefix) / MANIFEST_NAME
    try:
        return PackedEnv.from_json(manifest.read_text())
    except (OSError, ValueError, KeyError):
        return None


def imported_from_outside(also_allowed: Iterable[str] = ()) -> list[str]:
    """Top-level packages this interpreter has loaded from neither its own environment
    (``sys.prefix``) nor its Python's standard library, nor ``also_allowed`` (on an executor:
    Spark's own ``pyspark.zip``, which the cluster brings). Empty in the packed environment; in a
    checkout's venv it names whatever came from the checkout."""
    paths = sysconfig.get_paths()
    roots = {os.path.realpath(r) for r in (sys.prefix, paths["stdlib"], paths["platstdlib"], *also_allowed)}
    outside = set()
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if not location:
            continue
        real = os.path.realpath(location)
        if not any(real == root or real.startswith(root + os.sep) for root in roots):
            outside.add(name.split(".")[0])
    return sorted(outside)
