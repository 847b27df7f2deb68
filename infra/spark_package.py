"""``make spark-package``: the Spark jobs and their Python environment, for EMR Serverless or a cluster.

Builds a fresh venv holding ``imagelake`` and ``spark_jobs`` (copied from this
checkout) and exactly the runtime libraries the jobs import (the ``spark-runtime``
group of pyproject.toml), at the versions of ``uv.lock`` (``uv export``); writes its
manifest (the Python it was built with, a digest of the lock and the sources:
imagelake/batch/packed_env.py); packs it with venv-pack into
``imagelake-spark-env.tar.gz`` (the ``spark.archives`` of every job run,
orchestration/spark_submission.py); copies the entry points beside it; and checks
the archive by unpacking it and importing every job with its Python, isolated from
this checkout.

PySpark is not packed: EMR Serverless and the cluster bring Spark. The venv links to
the Python that built it, so build on x86_64 Linux with the Python the executors
have (3.11 on EMR's emr-spark-8.0.0; docs/deploy.md, section 6).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagelake.batch.packed_env import MANIFEST_NAME, PackedEnv, PackedEnvError
from imagelake.settings import PROJECT_ROOT, SPARK_JOBS, SPARK_PACKAGE_DIR, SPARK_PACKAGE_NAME, spark_job_file
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


def run(*command: str, cwd: Path | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=cwd)


#: The project's packages the jobs import (the package holds these, not assets/ or orchestration/).
PACKED_PACKAGES: tuple[str, ...] = ("imagelake", "spark_jobs")
#: Besides those packages' sources, what decides the archive's content: the lock, the project's
#: metadata and this recipe.
DIGEST_FILES: tuple[str, ...] = ("uv.lock", "pyproject.toml", "infra/spark_package.py")


def package_digest(root: Path = PROJECT_ROOT) -> str:
    """sha256 over everything that decides the archive's content (same inputs, same digest)."""
    files = [root / name for name in DIGEST_FILES]
    files += sorted(f for package in PACKED_PACKAGES for f in (root / package).rglob("*.py"))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def this_environment() -> PackedEnv:
    """The manifest an archive built now, with this interpreter, gets."""
    return PackedEnv(
        python=platform.python_version(), platform=sysconfig.get_platform(), digest=package_digest()
    )


def staged_project(into: Path) -> Path:
    """The packed packages and the project's metadata, copied out of the checkout: setuptools
    builds in its source folder, and a stale ``build/lib`` there (a module since deleted) would
    otherwise end up in the archive."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, into / name)
    for package in PACKED_PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, into / package, ignore=ignore)
    return into


def build(out: Path) -> Path:
    manifest = this_environment()
    if manifest.python_minor != "3.11":
        print(
            f"warning: EMR's emr-spark-8.0.0 runs Python 3.11; this is {manifest.python}: build with "
            "the Python your executors have",
            file=sys.stderr,
        )
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    uv = find_uv()
    requirements = locked_requirements(uv, out)
    venv = out / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))  # nothing installs into it later
    python = str(venv / "bin" / "python")
    # venv-pack packs files, not links into uv's cache.
    install = [uv, "pip", "install", "--quiet", "--python", python, "--link-mode", "copy"]
    run(*install, "--require-hashes", "-r", str(requirements))
    # The project without its orchestration-side dependencies (Dagster, dbt, Kafka...): the jobs need none.
    with tempfile.TemporaryDirectory() as staging:
        run(*install, "--no-deps", str(staged_project(Path(staging))))
    (venv / MANIFEST_NAME).write_text(manifest.to_json())
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
    check(archive, manifest)
    # Beside the archive too: what it holds, readable without opening it (ensure_package's cache key).
    (out / MANIFEST_NAME).write_text(manifest.to_json())
    return archive


#: Run by the check below inside the unpacked archive: every job imported, then what came from where.
_IMPORT_CHECK = """
import json
{imports}
from imagelake.batch.packed_env import imported_from_outside, running
print(json.dumps({{"env": running().to_json(), "outside": imported_from_outside()}}))
"""


def check(archive: Path, manifest: PackedEnv) -> None:
    """Unpack the archive as an executor does and import every job with its interpreter, isolated
    (``-I``, in an empty folder) so nothing of this checkout or its venv can stand in for it."""
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="fully_trusted")
        imports = "\n".join(f"import {spark_job_file(job)[:-3].replace('/', '.')}" for job in SPARK_JOBS)
        done = subprocess.run(
            [str(Path(tmp) / "bin" / "python"), "-I", "-c", _IMPORT_CHECK.format(imports=imports)],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"the packed environment cannot import the jobs:\n{done.stderr}")
        seen = json.loads(done.stdout)
        if seen["outside"] or PackedEnv.from_json(seen["env"]) != manifest:
            raise SystemExit(f"the packed environment is not self-contained: {seen}")
        print("spark package imports every job, from itself alone")


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One builder of ``out`` at a time (a test session and a benchmark may both want it)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def built_manifest(out: Path) -> PackedEnv | None:
    """What the package in ``out`` says it holds, if it is complete."""
    complete = (out / SPARK_PACKAGE_NAME).is_file() and all(
        (out / spark_job_file(j)).is_file() for j in SPARK_JOBS
    )
    try:
        return PackedEnv.from_json((out / MANIFEST_NAME).read_text()) if complete else None
    except (OSError, ValueError, KeyError, PackedEnvError):
        return None


def ensure_package(out: Path = SPARK_PACKAGE_DIR) -> Path:
    """The package folder ``make spark-package`` writes, built again only if the lock, the sources
    or the Python changed since (the tests and the benchmark ship it to their cluster)."""
    with _locked(out):
        if built_manifest(out) != this_environment():
            build(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SPARK_PACKAGE_DIR)
    args = parser.parse_args()
    with _locked(args.out.resolve()):
        archive = build(args.out.resolve())
    size = archive.stat().st_size / 1e6
    print(f"\n{archive} ({size:.0f} MB) and {archive.parent / 'spark_jobs'}/. Upload them with:")
    print(
        f"  aws s3 cp --recursive {archive.parent} s3://<OpsBucketName>/spark/<version>/ --exclude 'venv/*'"
    )
    print("then set IMAGELAKE_SPARK_CODE_URI=s3://<OpsBucketName>/spark/<version>")
    print(f"(a Spark cluster: IMAGELAKE_SPARK_MODE=cluster reads {SPARK_PACKAGE_DIR} by default)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
