"""``make spark-package``: the Spark jobs and their Python environment, ready for EMR Serverless.

Builds a fresh venv holding ``imagelake`` and ``spark_jobs`` (from this
checkout) and exactly the runtime libraries the jobs import, pinned to the
versions the tests ran with; packs it with venv-pack into
``imagelake-spark-env.tar.gz`` (the ``spark.archives`` of every job run,
``orchestration/spark.py``); copies the entry points beside it; and checks
the archive by unpacking it and importing every job with its Python.

PySpark is not packed: EMR Serverless brings Spark. The venv links to the
Python that built it, so build on x86_64 Linux with the Python 3.11 of the
EMR release (docs/deploy.md, section 6).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

from imagelake.settings import PROJECT_ROOT, SPARK_JOBS, SPARK_PACKAGE_NAME

#: What the Spark jobs import at run time besides the project itself (and Spark).
RUNTIME_LIBRARIES: tuple[str, ...] = (
    "dagster-pipes",
    "pyarrow",
    "obstore",
    "pillow",
    "numpy",
    "boto3",
    "pydantic",
)


def pinned_requirements() -> list[str]:
    """The runtime libraries at the versions installed here (the ones the test suite ran with)."""
    return [f"{name}=={version(name)}" for name in RUNTIME_LIBRARIES]


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
    venv = out / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    run(python, "-m", "pip", "install", "-q", "--upgrade", "pip")
    run(python, "-m", "pip", "install", "-q", *pinned_requirements())
    # The project without its orchestration-side dependencies (Dagster, dbt, Kafka...): the jobs need none.
    run(python, "-m", "pip", "install", "-q", "--no-deps", str(PROJECT_ROOT))
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
        shutil.copy(PROJECT_ROOT / "spark_jobs" / f"{job}.py", entry_points / f"{job}.py")
    shutil.rmtree(venv)
    check(archive)
    return archive


def check(archive: Path) -> None:
    """Unpack the archive as EMR does and import every job with its interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="fully_trusted")
        imports = "; ".join(f"import spark_jobs.{job}" for job in SPARK_JOBS)
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
