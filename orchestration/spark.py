"""The one place that decides how a Spark job runs: local ``spark-submit`` or EMR Serverless.

Both run the same file of ``spark_jobs/`` with the same Pipes extras and get
the same report back:

- local: ``PipesSubprocessClient`` runs ``spark-submit --master local[*]``
  with this interpreter as the Python of the driver and the workers; the
  context and messages travel through temp files.
- prod: ``PipesEMRServerlessClient`` starts a job run on the application
  (infra/aws processing stack) with the code and the packed environment
  from ``spark_code_uri`` (``make spark-package``); messages come back
  through the ops bucket's ``pipes/`` prefix (``PipesS3MessageReader``).
"""

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import dagster as dg
from dagster._core.pipes.client import PipesClientCompletedInvocation
from dagster._utils.error import SerializableErrorInfo

from imagelake.settings import PROJECT_ROOT, SPARK_JOBS, SPARK_PACKAGE_NAME, Settings, spark_job_file

if TYPE_CHECKING:  # imported when an EMR job starts (orchestration/emr.py says why)
    from dagster_aws.pipes import PipesEMRServerlessClient

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


class SparkResource(dg.ConfigurableResource):
    """Runs a ``spark_jobs/`` file through Dagster Pipes, locally or on EMR Serverless."""

    mode: str = "local"  # local | emr
    spark_master: str = "local[*]"
    #: Local: extra ``--conf`` pairs (tests shrink Spark's memory, for instance).
    spark_conf: dict[str, str] = {}
    region: str = "us-east-1"
    emr_application_id: str = ""
    emr_job_role_arn: str = ""
    #: ``s3://<ops bucket>/spark/<version>``: spark_jobs/*.py and the environment archive.
    spark_code_uri: str = ""
    pipes_bucket: str = ""
    #: An S3/EMR endpoint override (moto in tests); empty for AWS.
    aws_endpoint: str = ""

    # -- local ------------------------------------------------------------------
    def local_command(self, job: str) -> list[str]:
        """``spark-submit`` for one job, with this interpreter for the driver and the workers."""
        _check_job(job)
        python = sys.executable
        conf = {**LOCAL_CONF, "spark.pyspark.python": python, "spark.pyspark.driver.python": python}
        conf.update(self.spark_conf)
        command = [str(Path(python).with_name("spark-submit")), "--master", self.spark_master]
        for key, value in conf.items():
            command += ["--conf", f"{key}={value}"]
        return [*command, str(PROJECT_ROOT / spark_job_file(job))]

    def local_env(self) -> dict[str, str]:
        """The driver and the workers import this checkout's ``imagelake`` and ``spark_jobs``."""
        path = [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join(path),
            "SPARK_HOME": _pyspark_home(),
        }

    # -- EMR Serverless ---------------------------------------------------------
    def emr_request(self, job: str, run_id: str) -> dict[str, Any]:
        """The ``StartJobRun`` request for one job (Pipes adds its bootstrap ``--conf``s)."""
        _check_job(job)
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
        code = self.spark_code_uri.rstrip("/")
        python = "./environment/bin/python"
        conf = {
            "spark.archives": f"{code}/{SPARK_PACKAGE_NAME}#environment",
            "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": python,
            "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": python,
            "spark.executorEnv.PYSPARK_PYTHON": python,
        }
        return {
            "applicationId": self.emr_application_id,
            "executionRoleArn": self.emr_job_role_arn,
            "name": f"imagelake-{job}-{run_id[:8]}",
            # One job run per Dagster run and job: a retried StartJobRun does not start a second one.
            "clientToken": f"{run_id}-{job}"[:64],
            "jobDriver": {
                "sparkSubmit": {
                    "entryPoint": f"{code}/{spark_job_file(job)}",
                    "entryPointArguments": [],
                    "sparkSubmitParameters": " ".join(f"--conf {k}={v}" for k, v in conf.items()),
                }
            },
            "configurationOverrides": {
                "monitoringConfiguration": {
                    "s3MonitoringConfiguration": {"logUri": f"s3://{self.pipes_bucket}/emr-logs/"}
                }
            },
            "tags": {"imagelake/job": job},
        }

    def _aws(self, service: str):
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.aws_endpoint:
            kwargs["endpoint_url"] = self.aws_endpoint
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
        if self.mode == "emr":
            request = self.emr_request(job, context.run.run_id)
            context.log.info(f"EMR Serverless job run {request['name']} on {self.emr_application_id}")
            return self.emr_client().run(context=context, start_job_run_params=request, extras=extras)
        raise dg.DagsterInvariantViolationError(
            f"SparkResource.mode must be 'local' or 'emr', got {self.mode!r}"
        )


def _pyspark_home() -> str:
    """The pip-installed Spark, found without importing pyspark. Named even when the shell has
    a SPARK_HOME: its JVM side must match this pyspark. spark-submit would otherwise find it
    through a helper script whose shebang breaks when the checkout's path has a space."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise dg.DagsterInvariantViolationError("pyspark is not installed here: run `make setup`")
    return str(Path(spec.origin).parent)


def _check_job(job: str) -> None:
    if job not in SPARK_JOBS:
        raise dg.DagsterInvariantViolationError(f"unknown Spark job {job!r}; known: {', '.join(SPARK_JOBS)}")


def spark_resource(settings: Settings) -> SparkResource:
    """Local Spark, or EMR Serverless (prod's default): ``IMAGELAKE_SPARK_MODE``."""
    return SparkResource(
        mode=settings.spark_mode,
        spark_master=settings.spark_master,
        region=settings.aws_region,
        emr_application_id=settings.emr_application_id,
        emr_job_role_arn=settings.emr_job_role_arn,
        spark_code_uri=settings.spark_code_uri,
        pipes_bucket=settings.pipes_bucket,
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
