"""The Spark jobs import with only what ``make spark-package`` ships (infra/spark_package.py).

The package holds imagelake, spark_jobs and RUNTIME_LIBRARIES (with their own
dependencies), not the orchestration side (Dagster, dbt, the Kafka client).
An import of, say, ``imagelake.realtime.kafka`` from a module a job imports fails
only on EMR or in ``make spark-package``; these tests catch it here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from textwrap import dedent

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from imagelake.settings import PROJECT_ROOT, SPARK_JOBS
from infra.spark_package import RUNTIME_LIBRARIES


def import_jobs(prelude: str = "") -> subprocess.CompletedProcess[str]:
    """Import every Spark job in a fresh interpreter (after ``prelude``); print the modules loaded."""
    imports = "\n".join(f"import spark_jobs.{job}_spark" for job in SPARK_JOBS)
    code = f"import json, sys\n{prelude}\n{imports}\nprint(json.dumps(sorted(sys.modules)))\n"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )


def test_spark_jobs_import_without_the_kafka_client():
    blocked = dedent(
        """
        for name in ("confluent_kafka", "aws_msk_iam_sasl_signer"):
            sys.modules[name] = None  # any import of it raises ImportError
        """
    )
    done = import_jobs(blocked)
    assert done.returncode == 0, done.stderr
    assert "imagelake.realtime.kafka" not in json.loads(done.stdout)


def runtime_closure() -> set[str]:
    """RUNTIME_LIBRARIES and everything pip installs with them (no extras), canonical names."""
    todo = [canonicalize_name(name) for name in RUNTIME_LIBRARIES]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            specs = requires(name) or []
        except PackageNotFoundError:
            continue
        for spec in specs:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def test_spark_jobs_import_with_only_the_packaged_libraries():
    """Every installed library the package does not ship is unimportable, as on EMR.

    Optional imports (botocore's of certifi, say) take their fallback, as they do there.
    """
    shipped = runtime_closure() | {canonicalize_name("imagelake")}
    absent = sorted(
        top
        for top, dists in packages_distributions().items()
        if not {canonicalize_name(dist) for dist in dists} & shipped
    )
    blocked = dedent(
        f"""
        for name in {absent!r}:
            if name not in sys.modules:  # leave what the interpreter loaded at startup (.pth hooks)
                sys.modules[name] = None
        """
    )
    done = import_jobs(blocked)
    assert done.returncode == 0, f"add the library to RUNTIME_LIBRARIES or cut the import:\n{done.stderr}"
