"""The prod launch path, offline: the EMR Serverless job-run request and moto's EMR Serverless/S3 server."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import boto3
import dagster as dg
import pytest

from imagelake.settings import SPARK_PACKAGE_NAME, load_settings
from orchestration.s3_pipes import PIPES_PREFIX, PrefixedS3MessageReader
from orchestration.spark import SPARK_JOBS, SparkResource, spark_resource

pytestmark = pytest.mark.integration

CODE = "s3://imagelake-prod-ops/spark/1.4.0"
ROLE = "arn:aws:iam::123456789012:role/imagelake-prod-emr-job"


def emr(**changes) -> SparkResource:
    base = {
        "mode": "emr",
        "emr_application_id": "00abc",
        "emr_job_role_arn": ROLE,
        "spark_code_uri": CODE + "/",
        "pipes_bucket": "imagelake-prod-ops",
    }
    return SparkResource(**{**base, **changes})


@pytest.mark.parametrize("job", SPARK_JOBS)
def test_the_job_run_request_names_entry_point_archive_python_and_role(job):
    request = emr().emr_request(job, "0123456789abcdef-run")
    assert request["applicationId"] == "00abc" and request["executionRoleArn"] == ROLE
    driver = request["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == f"{CODE}/spark_jobs/{job}_spark.py"
    conf = dict(
        p.strip().split("=", 1) for p in driver["sparkSubmitParameters"].split("--conf ") if p.strip()
    )
    assert conf["spark.archives"] == f"{CODE}/{SPARK_PACKAGE_NAME}#environment"
    assert conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    assert conf["spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON"] == "./environment/bin/python"
    assert conf["spark.executorEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    assert request["clientToken"] == f"0123456789abcdef-run-{job}"
    logs = request["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"]["logUri"]
    assert logs == "s3://imagelake-prod-ops/emr-logs/"


def test_missing_prod_settings_are_named_with_what_to_do():
    with pytest.raises(
        dg.DagsterInvariantViolationError, match=r"IMAGELAKE_EMR_JOB_ROLE_ARN.*docs/deploy\.md"
    ):
        emr(emr_job_role_arn="").emr_request("derivatives", "run")
    with pytest.raises(dg.DagsterInvariantViolationError, match="unknown Spark job"):
        emr().emr_request("resize_everything", "run")


def test_the_environment_switch_picks_the_launcher():
    local = spark_resource(load_settings({"IMAGELAKE_ENV": "local"}))
    assert local.mode == "local" and local.local_command("compaction")[-1].endswith(
        "spark_jobs/compaction_spark.py"
    )
    prod = spark_resource(
        load_settings(
            {
                "IMAGELAKE_ENV": "prod",
                "IMAGELAKE_LAKE_URL": "s3://lake/prefix",
                "IMAGELAKE_API_KEYS": "k:c",
                "IMAGELAKE_EMR_APPLICATION_ID": "00abc",
                "IMAGELAKE_EMR_JOB_ROLE_ARN": ROLE,
                "IMAGELAKE_SPARK_CODE_URI": CODE,
                "IMAGELAKE_PIPES_BUCKET": "imagelake-prod-ops",
            }
        )
    )
    assert prod.mode == "emr" and prod.emr_request("derivatives", "r")["executionRoleArn"] == ROLE


def test_pipes_messages_stay_under_the_ops_buckets_pipes_prefix(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    reader = PrefixedS3MessageReader(prefix=PIPES_PREFIX, bucket="ops", client=s3)
    with reader.get_params() as params:
        assert params["bucket"] == "ops" and params["key_prefix"].startswith(f"{PIPES_PREFIX}/")
        assert len(params["key_prefix"]) > len(PIPES_PREFIX) + 10


def test_an_asset_submits_its_job_to_emr_serverless_on_moto(moto_endpoint, monkeypatch):
    """moto accepts the job run and reports it done at once; it runs no Spark, so no report comes back.

    (moto knows only older release labels; prod's application runs emr-spark-8.0.0, infra/aws.)
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("emr-serverless", endpoint_url=moto_endpoint, region_name="us-east-1")
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket="imagelake-prod-ops"
    )
    app = client.create_application(name="imagelake-prod-spark", releaseLabel="emr-7.0.0", type="SPARK")
    spark = emr(emr_application_id=app["applicationId"], aws_endpoint=moto_endpoint)

    @dg.asset
    def submitted(context: dg.AssetExecutionContext, spark: SparkResource) -> dg.MaterializeResult:
        invocation = spark.run(context, "garbage_collection", {"dry_run": True})
        return dg.MaterializeResult(metadata=dict(invocation.metadata))

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [submitted], instance=instance, resources={"spark": spark}, raise_on_error=False
        )
    runs = client.list_job_runs(applicationId=app["applicationId"])["jobRuns"]
    assert len(runs) == 1
    run = client.get_job_run(applicationId=app["applicationId"], jobRunId=runs[0]["id"])["jobRun"]
    assert run["executionRole"] == ROLE and run["name"].startswith("imagelake-garbage_collection-")
    driver = run["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == f"{CODE}/spark_jobs/garbage_collection_spark.py"
    params = driver["sparkSubmitParameters"]
    assert f"spark.archives={CODE}/{SPARK_PACKAGE_NAME}#environment" in params
    # Pipes' bootstrap: the context and where to write messages, as driver environment variables.
    assert "spark.emr-serverless.driverEnv.DAGSTER_PIPES_CONTEXT=" in params
    messages = params.split("spark.emr-serverless.driverEnv.DAGSTER_PIPES_MESSAGES=")[1].split(" ")[0]
    from dagster_pipes import decode_param

    assert decode_param(messages)["bucket"] == "imagelake-prod-ops"
    assert decode_param(messages)["key_prefix"].startswith("pipes/")
    assert json.dumps(run.get("tags", {}))  # Dagster's run tags travel with the job run
    assert result.success
    [mat] = result.asset_materializations_for_node("submitted")
    assert mat.metadata["AWS EMR Serverless Job Run ID"].value == runs[0]["id"]


def test_local_spark_submit_is_told_where_spark_is(monkeypatch, tmp_path):
    """spark-submit finds the pip-installed Spark through a helper script whose shebang is the
    venv's python: with a space in the checkout's path that shebang breaks, and every Spark
    job failed with exit code 127. The launcher names Spark's home itself."""
    monkeypatch.delenv("SPARK_HOME", raising=False)
    local = spark_resource(load_settings({"IMAGELAKE_ENV": "local"}))
    env = local.local_env()
    home = Path(env["SPARK_HOME"])
    assert (home / "bin" / "spark-class").is_file() and (home / "jars").is_dir()
    # spark-submit in a folder with a space and without its helper script still starts
    lonely = tmp_path / "a folder" / "spark-submit"
    lonely.parent.mkdir()
    shutil.copy(local.local_command("compaction")[0], lonely)
    done = subprocess.run(
        [str(lonely), "--version"], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "version" in (done.stdout + done.stderr)
    without = {k: v for k, v in os.environ.items() if k != "SPARK_HOME"}
    assert subprocess.run([str(lonely), "--version"], env=without, capture_output=True).returncode != 0
    # another Spark in the shell (say 3.5) would not match this pyspark: it is not used
    monkeypatch.setenv("SPARK_HOME", "/opt/spark-3.5")
    assert local.local_env()["SPARK_HOME"] == str(home)
