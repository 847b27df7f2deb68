"""One Spark job submission, rendered for each launcher: what runs on a cluster is what EMR receives.

A :class:`Submission` is built once from the job, where its code is and the Spark
conf: the entry point (``spark_jobs/<job>_spark.py``), the environment archive as
``spark.archives`` (unpacked as ``./environment`` in every executor's working
directory) and that environment's Python for the executors. EMR Serverless's
``StartJobRun`` request (:func:`emr_start_job_run`) and ``spark-submit``'s command
line (:func:`spark_submit_command`) are two renderings of it; each adds only what
its platform needs to start the driver. The job's own parameters travel apart, as
Pipes extras, the same way for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imagelake.settings import PROJECT_ROOT, SPARK_JOBS, SPARK_PACKAGE_NAME, spark_job_file

#: Where each executor unpacks the environment archive (the ``#`` name in ``spark.archives``).
ENV_DIR = "environment"
#: The packed environment's Python, relative to an executor's (or EMR's driver's) working directory.
ENV_PYTHON = f"./{ENV_DIR}/bin/python"


class UnknownJob(ValueError):
    """Not one of imagelake's Spark jobs."""


@dataclass(frozen=True)
class Submission:
    """One job as every launcher submits it."""

    job: str
    #: The file spark-submit runs as the driver: ``<code>/spark_jobs/<job>_spark.py``.
    entry_point: str
    #: The Spark conf every launcher passes (the archive, the executors' Python, the operator's conf).
    conf: Mapping[str, str] = field(default_factory=dict)
    #: The environment archive (``<code>/imagelake-spark-env.tar.gz``), or None when run from a checkout.
    archive: str | None = None


def check_job(job: str) -> None:
    if job not in SPARK_JOBS:
        raise UnknownJob(f"unknown Spark job {job!r}; known: {', '.join(SPARK_JOBS)}")


def packed(job: str, code_uri: str, conf: Mapping[str, str] = {}) -> Submission:
    """The job shipped with its packed environment (``make spark-package``'s folder at ``code_uri``):
    each executor unpacks the archive and runs its tasks with that Python, not the driver's."""
    check_job(job)
    code = code_uri.rstrip("/")
    archive = f"{code}/{SPARK_PACKAGE_NAME}"
    shipped = {"spark.archives": f"{archive}#{ENV_DIR}", "spark.executorEnv.PYSPARK_PYTHON": ENV_PYTHON}
    # The operator's conf adds to the submission; the archive and the executors' Python stay as built.
    return Submission(job, f"{code}/{spark_job_file(job)}", {**conf, **shipped}, archive)


def from_checkout(job: str, conf: Mapping[str, str] = {}) -> Submission:
    """The job run from this checkout (local mode: the driver's interpreter runs the tasks too)."""
    check_job(job)
    return Submission(job, str(PROJECT_ROOT / spark_job_file(job)), dict(conf))


def conf_arguments(conf: Mapping[str, str]) -> list[str]:
    return [arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]


def spark_submit_command(
    submission: Submission, *, spark_submit: str, master: str, driver_python: str, executor_python: str
) -> list[str]:
    """``spark-submit`` in client mode: the driver runs here with ``driver_python``, the executors
    (wherever the master puts them) with ``executor_python``."""
    conf = {
        **submission.conf,
        "spark.pyspark.driver.python": driver_python,
        "spark.pyspark.python": executor_python,
    }
    return [
        spark_submit,
        "--master",
        master,
        "--deploy-mode",
        "client",
        *conf_arguments(conf),
        submission.entry_point,
    ]


def emr_start_job_run(
    submission: Submission, *, application_id: str, role_arn: str, run_id: str, ops_bucket: str
) -> dict[str, Any]:
    """EMR Serverless's ``StartJobRun`` request (Pipes adds its bootstrap ``--conf``\\ s): there the
    driver runs in EMR's container too, with the packed Python."""
    conf = {
        **submission.conf,
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": ENV_PYTHON,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": ENV_PYTHON,
    }
    return {
        "applicationId": application_id,
        "executionRoleArn": role_arn,
        "name": f"imagelake-{submission.job}-{run_id[:8]}",
        # One job run per Dagster run and job: a retried StartJobRun does not start a second one.
        "clientToken": f"{run_id}-{submission.job}"[:64],
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": submission.entry_point,
                "entryPointArguments": [],
                "sparkSubmitParameters": " ".join(conf_arguments(conf)),
            }
        },
        "configurationOverrides": {
            "monitoringConfiguration": {
                "s3MonitoringConfiguration": {"logUri": f"s3://{ops_bucket}/emr-logs/"}
            }
        },
        "tags": {"imagelake/job": submission.job},
    }
