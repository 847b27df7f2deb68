"""``make spark-package``: the Spark jobs and their Python environment, ready for EMR Serverless.

Builds a fresh venv holding ``imagelake`` and ``spark_jobs`` (from this
checkout) and exactly the runtime libraries the jobs import (the ``spark-runtime``
group of pyproject.toml), at the versions of ``uv.lock`` (``uv export``); packs it
with venv-pack into
``imagelake-spark-env.tar.gz`` (the ``spark.archives`` of every job run,
``orchestration/spark.py``); copies the entry points beside it; and checks
the archive by unpacking it and importing every job with its Python.

PySpark is not packed: EMR Serverless brings Spark. The venv links to the
Python that built it, so build on x86_64 Linux with the Python 3.11 of the
EMR release (docs/deploy.md, section 6).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

from imagelake.settings import PROJECT_ROOT, SPARK_JOBS, SPARK_PACKAGE_NAME, spark_job_file
from infra.uv import find_uv

#: The dependency group of pyproject.toml that holds what the jobs import besides the project and Spark.
RUNTIME_GROUP = "spark-runtime"


def runtime_libraries() -> tuple[str, ...]:
    """The names in the ``spark-runtime`` group (pyproject.toml is their one place)."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    specs = project["dependency-groups"][RUNTIME_GROUP]
    return tuple(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0] for spec in specs)


#: What the Spark jobs import at run time besides the project itself (and Spark).
RUNTIME_LIBRARIES: tuple[str, ...] = runtime_libraries()


def locked_requirements(uv: str, out: Path) -> Path:
    """The runtime group's closure at uv.lock's versions, with hashes: a requirements file."""
    requirements = out / "requirements.txt"
    run(
        uv, "export", "--locked", "--only-group", RUNTIME_GROUP, "--no-emit-project", "--no-header",
        "--format", "requirements.txt", "--output-file", str(requirements), "--quiet",
        "--project", str(PROJECT_ROOT),
    )  # fmt: skip
    return requirements


def run(*command: str) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def build(out: Path) -> Path:
    if sys.version_info[:2] != (3, 11):
        print(
            f"warning: EMR's emr-spark-8.0.0 runs Python 3.11; this is {sys.version.split()[0]}",
            file=sys.stderr,
        )
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    uv = find_uv()
    requirements = locked_requirements(uv, out)
    venv = out / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    # venv-pack packs files, not links into uv's cache.
    install = [uv, "pip", "install", "--quiet", "--python", python, "--link-mode", "copy"]
    run(*install, "--require-hashes", "-r", str(requirements))
    # The project without its orchestration-side dependencies (Dagster, dbt, Kafka...): the jobs need none.
    run(*install, "--no-deps", str(PROJECT_ROOT))
    archive = out / SPARK_PACKAGE_NAME
    run(
        sys.executable,
        "-m",
        "venv_pack",
        "--prefix",
        str(venv),
        "--output",
        str(archive),
        "--force",
        "--quiet",
    )
    entry_points = out / "spark_jobs"
    entry_points.mkdir()
    for job in SPARK_JOBS:
        shutil.copy(PROJECT_ROOT / spark_job_file(job), out / spark_job_file(job))
    shutil.rmtree(venv)
    check(archive)
    return archive


def check(archive: Path) -> None:
    """Unpack the archive as EMR does and import every job with its interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="fully_trusted")
        imports = "; ".join(f"import {spark_job_file(job)[:-3].replace('/', '.')}" for job in SPARK_JOBS)
        run(str(Path(tmp) / "bin" / "python"), "-c", f"{imports}; print('spark package imports every job')")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / ".cache" / "spark-package")
    args = parser.parse_args()
    archive = build(args.out.resolve())
    size = archive.stat().st_size / 1e6
    print(f"\n{archive} ({size:.0f} MB) and {archive.parent / 'spark_jobs'}/. Upload them with:")
    print(
        f"  aws s3 cp --recursive {archive.parent} s3://<OpsBucketName>/spark/<version>/ --exclude 'venv/*'"
    )
    print("then set IMAGELAKE_SPARK_CODE_URI=s3://<OpsBucketName>/spark/<version>")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
