"""The one place that decides how a Spark job runs: local, on a cluster's master, or on EMR Serverless.

All three run the same file of ``spark_jobs/`` with the same Pipes extras and get
the same report back; the submission itself (entry point, environment archive,
conf) is built once, orchestration/spark_submission.py:

- local: ``PipesSubprocessClient`` runs ``spark-submit --master local[*]``
  with this interpreter as the Python of the driver and the workers, from this
  checkout; the context and messages travel through temp files.
- cluster: ``spark-submit --master <spark://…, k8s://…, yarn>`` in client mode;
  the driver runs here, the executors unpack the environment archive from
  ``make spark-package`` and run their tasks with its Python; the context and the
  messages go through the Pipes bucket (orchestration/s3_pipes.py), as on EMR.
  Before anything is submitted the master must answer and the archive must fit
  the driver's Python (orchestration/spark_preflight.py).
- emr: ``PipesEMRServerlessClient`` starts a job run on the application
  (infra/aws processing stack) with the code and the packed environment
  from ``spark_code_uri``; messages come back through the ops bucket's ``pipes/``
  prefix.
"""

import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import dagster as dg
from botocore.config import Config
from dagster._core.pipes.client import PipesClientCompletedInvocation
from dagster._utils.error import SerializableErrorInfo

from imagelake.batch.packed_env import PackedEnvError
from imagelake.settings import (
    PROJECT_ROOT,
    S3_RETRY_ATTEMPTS,
    SPARK_JOBS,
    SPARK_MODES,
    SPARK_PACKAGE_DIR,
    Settings,
    SettingsError,
    spark_home,
)
from orchestration import spark_preflight, spark_submission
from orchestration.spark_submission import ENV_PYTHON, Submission, UnknownJob

if TYPE_CHECKING:  # imported when an EMR job starts (orchestration/emr.py says why)
    from dagster_aws.pipes import PipesEMRServerlessClient

__all__ = ["SPARK_JOBS", "SparkResource", "spark_resource"]

#: An asset step reports the job's summary as its materialization; an op step gets it back.
StepContext = dg.AssetExecutionContext | dg.OpExecutionContext

#: Local Spark: bind to loopback, no UI, quiet.
LOCAL_CONF: dict[str, str] = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.python.worker.reuse": "true",
    "spark.log.level": "WARN",
}
#: A cluster: quiet; the driver's address, memory and the executors' sizes are the operator's conf.
CLUSTER_CONF: dict[str, str] = {"spark.ui.showConsoleProgress": "false", "spark.log.level": "WARN"}


class SparkResource(dg.ConfigurableResource):
    """Runs a ``spark_jobs/`` file through Dagster Pipes: locally, on a cluster or on EMR Serverless."""

    mode: str = "local"  # local | cluster | emr (imagelake.settings.SPARK_MODES)
    #: ``local[*]``; in cluster mode the cluster's master (``spark://host:7077``, ``k8s://…``, ``yarn``).
    spark_master: str = "local[*]"
    #: Extra ``--conf`` pairs, in every mode (tests shrink Spark's memory, a cluster sizes executors).
    spark_conf: dict[str, str] = {}
    region: str = "us-east-1"
    emr_application_id: str = ""
    emr_job_role_arn: str = ""
    #: ``make spark-package``'s folder: ``s3://<ops bucket>/spark/<version>`` on EMR; on a cluster a
    #: folder here (by default SPARK_PACKAGE_DIR) or a URI the executors can fetch.
    spark_code_uri: str = ""
    #: The bucket Pipes' context and messages go through (EMR, cluster).
    pipes_bucket: str = ""
    #: An S3 (and, on EMR, EMR) endpoint override: moto in tests, an S3-compatible store; empty for AWS.
    aws_endpoint: str = ""

    # -- local ------------------------------------------------------------------
    def local_command(self, job: str) -> list[str]:
        """``spark-submit`` for one job, with this interpreter for the driver and the workers."""
        submission = _submission(
            lambda: spark_submission.from_checkout(job, {**LOCAL_CONF, **self.spark_conf})
        )
        python = sys.executable
        return spark_submission.spark_submit_command(
            submission,
            spark_submit=_spark_submit(),
            master=self.spark_master,
            driver_python=self.spark_conf.get("spark.pyspark.driver.python", python),
            executor_python=self.spark_conf.get("spark.pyspark.python", python),
        )

    def local_env(self) -> dict[str, str]:
        """The driver and the workers import this checkout's ``imagelake`` and ``spark_jobs``."""
        return {
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": _checkout_pythonpath(),
            "SPARK_HOME": _spark_home(),
        }

    # -- a cluster's master -----------------------------------------------------
    def cluster_code(self) -> str:
        """Where the package is: the folder ``make spark-package`` writes unless told otherwise."""
        code = self.spark_code_uri or str(SPARK_PACKAGE_DIR)
        folder = spark_preflight.local_folder(code)
        return str(folder) if folder is not None else code

    def cluster_submission(self, job: str) -> Submission:
        return _submission(
            lambda: spark_submission.packed(job, self.cluster_code(), {**CLUSTER_CONF, **self.spark_conf})
        )

    def cluster_command(self, job: str) -> list[str]:
        """``spark-submit`` to the cluster: the driver here on this interpreter, the executors on the
        packed environment's."""
        return spark_submission.spark_submit_command(
            self.cluster_submission(job),
            spark_submit=_spark_submit(),
            master=self.spark_master,
            driver_python=sys.executable,
            executor_python=ENV_PYTHON,
        )

    def cluster_env(self) -> dict[str, str]:
        """The driver may import this checkout; the executors get nothing of it (no PYTHONPATH goes
        to them). The job's Pipes client finds the bucket's endpoint as boto3 reads it."""
        env = {
            "PYSPARK_PYTHON": ENV_PYTHON,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": _checkout_pythonpath(),
            "SPARK_HOME": _spark_home(),
            "AWS_REGION": self.region,
        }
        if self.aws_endpoint:
            env["AWS_ENDPOINT_URL_S3"] = self.aws_endpoint
        return env

    def check_cluster(self, job: str) -> None:
        """Fail before submitting anything if the master does not answer or the package cannot run
        here. A stopped master may come back (the step is retried); a wrong package stays wrong."""
        if not self.pipes_bucket:
            raise dg.DagsterInvariantViolationError(
                "Spark on a cluster needs IMAGELAKE_PIPES_BUCKET: the job's context and messages go through it"
            )
        try:
            spark_preflight.check_master(self.spark_master)
        except spark_preflight.MasterUnreachable as exc:
            raise dg.Failure(description=f"Spark job {job}: {exc}") from exc
        folder = spark_preflight.local_folder(self.cluster_code())
        if folder is None:
            return  # fetched by the executors themselves; make spark-package checked it where it was built
        try:
            spark_preflight.check_package(folder, job, platform.python_version())
        except PackedEnvError as exc:
            raise dg.Failure(description=f"Spark job {job}: {exc}", allow_retries=False) from exc

    # -- EMR Serverless ---------------------------------------------------------
    def emr_request(self, job: str, run_id: str) -> dict[str, Any]:
        """The ``StartJobRun`` request for one job (Pipes adds its bootstrap ``--conf``s)."""
        submission = _submission(lambda: spark_submission.packed(job, self.spark_code_uri, self.spark_conf))
        missing = [
            name
            for name in ("emr_application_id", "emr_job_role_arn", "spark_code_uri", "pipes_bucket")
            if not getattr(self, name)
        ]
        if missing:
            raise dg.DagsterInvariantViolationError(
                f"Spark on EMR Serverless needs {', '.join('IMAGELAKE_' + m.upper() for m in missing)}: "
                "take them from the processing stack's outputs (docs/deploy.md, section 6)"
            )
        return spark_submission.emr_start_job_run(
            submission,
            application_id=self.emr_application_id,
            role_arn=self.emr_job_role_arn,
            run_id=run_id,
            ops_bucket=self.pipes_bucket,
        )

    def _aws(self, service: str):
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.aws_endpoint:
            kwargs["endpoint_url"] = self.aws_endpoint
        if service == "s3":
            kwargs["config"] = Config(retries={"mode": "standard", "max_attempts": S3_RETRY_ATTEMPTS})
        return boto3.client(service, **kwargs)

    def emr_client(self) -> "PipesEMRServerlessClient":
        from orchestration.emr import emr_serverless_client

        return emr_serverless_client(self._aws("emr-serverless"), self._aws("s3"), self.pipes_bucket)

    # -- either -----------------------------------------------------------------
    def run(self, context: StepContext, job: str, extras: dict[str, Any]) -> PipesClientCompletedInvocation:
        """Run ``spark_jobs/<job>.py`` and wait; its report arrives through Pipes.

        A job that fails with an exception says why through Pipes; that reason, not "process
        failed with code 1", becomes the step's failure.
        """
        before = len(_engine_events(context))
        try:
            return self._run(context, job, extras)
        except Exception as exc:
            error = external_exception(context, after=before)
            if error is None:
                raise
            raise dg.Failure(
                description=f"Spark job {job} failed: {error.message.strip()}",
                # A damaged lake file stays damaged: retrying the step would only repeat this.
                allow_retries=error.cls_name not in FINAL_ERRORS,
            ) from exc

    def summary(self, context: dg.OpExecutionContext, job: str, extras: dict[str, Any]) -> dict[str, Any]:
        """Run a job from an op, which changes no asset (a dry run), and return the summary it reported."""
        messages = self.run(context, job, extras).get_custom_messages()
        if not messages:
            raise dg.Failure(description=f"Spark job {job} finished without reporting a summary; see its log")
        return messages[-1]

    def _run(self, context: StepContext, job: str, extras: dict[str, Any]) -> PipesClientCompletedInvocation:
        if self.mode == "local":
            context.log.info(f"spark-submit {job} on {self.spark_master}")
            client = dg.PipesSubprocessClient(env=self.local_env(), cwd=str(PROJECT_ROOT))
            return client.run(context=context, command=self.local_command(job), extras=extras)
        if self.mode == "cluster":
            self.check_cluster(job)
            from orchestration.s3_pipes import subprocess_client

            submission = self.cluster_submission(job)
            context.log.info(f"spark-submit {job} to {self.spark_master}, executors on {submission.archive}")
            client = subprocess_client(
                self._aws("s3"), self.pipes_bucket, self.cluster_env(), str(PROJECT_ROOT)
            )
            return client.run(context=context, command=self.cluster_command(job), extras=extras)
        if self.mode == "emr":
            request = self.emr_request(job, context.run.run_id)
            context.log.info(f"EMR Serverless job run {request['name']} on {self.emr_application_id}")
            return self.emr_client().run(context=context, start_job_run_params=request, extras=extras)
        raise dg.DagsterInvariantViolationError(
            f"SparkResource.mode must be one of {', '.join(SPARK_MODES)}, got {self.mode!r}"
        )


def _submission(build) -> Submission:
    """A submission, an unknown job said in Dagster's terms."""
    try:
        return build()
    except UnknownJob as exc:
        raise dg.DagsterInvariantViolationError(str(exc)) from exc


def _checkout_pythonpath() -> str:
    return os.pathsep.join([str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def _spark_submit() -> str:
    """The venv's ``spark-submit`` (found beside this interpreter)."""
    return str(Path(sys.executable).with_name("spark-submit"))


def _spark_home() -> str:
    """SPARK_HOME for spark-submit: named even when the shell has one (its JVM side must match this
    pyspark), since spark-submit would otherwise find it through a helper script whose shebang
    breaks when the checkout's path has a space."""
    try:
        return str(spark_home())
    except SettingsError as exc:
        raise dg.DagsterInvariantViolationError(str(exc)) from exc


def spark_resource(settings: Settings) -> SparkResource:
    """The launcher IMAGELAKE_SPARK_MODE names: local (the default), cluster, or EMR (prod's default)."""
    return SparkResource(
        mode=settings.spark_mode,
        spark_master=settings.spark_master,
        spark_conf=dict(settings.spark_conf),
        region=settings.aws_region,
        emr_application_id=settings.emr_application_id,
        emr_job_role_arn=settings.emr_job_role_arn,
        spark_code_uri=settings.spark_code_uri,
        pipes_bucket=settings.pipes_bucket,
        # EMR Serverless itself is AWS's; a cluster's Pipes bucket is where the lake's S3 is.
        aws_endpoint="" if settings.spark_mode == "emr" else settings.s3_endpoint,
    )


#: Exceptions of the Spark jobs that a retry cannot cure (the step fails once): a lake file that
#: is not Parquet, compaction stopped only by such files, images an operator named that failed.
FINAL_ERRORS = frozenset({"CorruptLakeFile", "CompactionBlocked", "RequestedImagesFailed"})

#: The engine event Dagster's Pipes session records when the external process closed with an exception.
_PIPES_CLOSED_WITH_EXCEPTION = "[pipes] external process pipes closed with exception"


def _engine_events(context: StepContext) -> Sequence[dg.EventLogEntry]:
    return context.instance.all_logs(context.run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)


def external_exception(context: StepContext, after: int = 0) -> SerializableErrorInfo | None:
    """The exception this step's Spark job closed Pipes with, if it did, among the engine
    events after the first ``after`` (those of this attempt, not of an earlier one)."""
    step = context.op_execution_context.get_step_execution_context().step.key
    for entry in reversed(_engine_events(context)[after:]):
        event = entry.dagster_event
        if event and event.step_key == step and entry.user_message == _PIPES_CLOSED_WITH_EXCEPTION:
            return event.engine_event_data.error
    return None
