"""One submission for every launcher, and the checks made before one goes to a cluster."""

import io
import socket
import sys
import tarfile

import pytest

from imagelake.batch.packed_env import (
    MANIFEST_NAME,
    PackedEnv,
    PackedEnvError,
    check_runs_with,
    imported_from_outside,
    read_archive,
    running,
)
from imagelake.settings import (
    PROJECT_ROOT,
    SPARK_JOBS,
    SPARK_PACKAGE_DIR,
    SPARK_PACKAGE_NAME,
    SettingsError,
    load_settings,
)
from infra.local.stack import free_port
from orchestration.spark import SparkResource, spark_resource
from orchestration.spark_preflight import MasterUnreachable, check_master, local_folder, master_addresses
from orchestration.spark_submission import ENV_PYTHON

CODE = "s3://imagelake-prod-ops/spark/1.4.0"
OPERATOR_CONF = {"spark.executor.memory": "4g", "spark.archives": "s3://elsewhere/other.tar.gz"}


def conf_of(arguments: list[str]) -> dict[str, str]:
    pairs = [arguments[i + 1] for i, a in enumerate(arguments) if a == "--conf"]
    return dict(pair.split("=", 1) for pair in pairs)


def resource(**changes) -> SparkResource:
    base = {
        "spark_master": "spark://spark-master:7077",
        "spark_code_uri": CODE,
        "spark_conf": OPERATOR_CONF,
        "emr_application_id": "00abc",
        "emr_job_role_arn": "arn:aws:iam::123456789012:role/job",
        "pipes_bucket": "imagelake-prod-ops",
    }
    return SparkResource(**{**base, **changes})


@pytest.mark.parametrize("job", SPARK_JOBS)
def test_a_cluster_runs_what_emr_receives(job):
    """The same job parameters give EMR's request and the cluster's spark-submit the same entry point,
    archive, executor Python and operator conf; each adds only how its driver starts."""
    spark = resource()
    command = spark.cluster_command(job)
    driver = spark.emr_request(job, "run-1")["jobDriver"]["sparkSubmit"]
    emr_conf = conf_of(driver["sparkSubmitParameters"].split(" "))
    cluster_conf = conf_of(command)

    assert command[-1] == driver["entryPoint"] == f"{CODE}/spark_jobs/{job}_spark.py"
    shared = {k: v for k, v in emr_conf.items() if cluster_conf.get(k) == v}
    assert shared == {
        "spark.archives": f"{CODE}/{SPARK_PACKAGE_NAME}#environment",
        "spark.executorEnv.PYSPARK_PYTHON": ENV_PYTHON,
        "spark.executor.memory": "4g",  # the operator's conf goes to both
    }
    # The operator's conf adds to the submission; the archive stays the one built for it.
    assert OPERATOR_CONF["spark.archives"] not in (emr_conf["spark.archives"], cluster_conf["spark.archives"])
    # How each driver starts: EMR runs it in its container on the packed Python, a cluster's runs here.
    assert emr_conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"] == ENV_PYTHON
    assert cluster_conf["spark.pyspark.driver.python"] == sys.executable
    assert cluster_conf["spark.pyspark.python"] == ENV_PYTHON


def test_the_cluster_command_is_client_mode_on_the_master_with_the_package_folder(tmp_path):
    spark = resource(spark_code_uri=tmp_path.as_uri(), aws_endpoint="http://127.0.0.1:5000")
    command = spark.cluster_command("derivatives")
    assert command[1:5] == ["--master", "spark://spark-master:7077", "--deploy-mode", "client"]
    assert command[-1] == str(tmp_path / "spark_jobs" / "derivatives_spark.py")  # file:// read as the folder
    assert conf_of(command)["spark.archives"] == f"{tmp_path / SPARK_PACKAGE_NAME}#environment"
    env = spark.cluster_env()
    assert env["PYSPARK_PYTHON"] == ENV_PYTHON and env["PYSPARK_DRIVER_PYTHON"] == sys.executable
    assert env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:5000"  # where the job's Pipes client finds S3
    assert resource(spark_code_uri="").cluster_code() == str(SPARK_PACKAGE_DIR)  # make spark-package's


def test_local_mode_still_runs_the_checkout_with_this_interpreter():
    spark = SparkResource(spark_master="local[2]", spark_conf={"spark.driver.memory": "1g"})
    command = spark.local_command("compaction")
    conf = conf_of(command)
    assert command[command.index("--master") + 1] == "local[2]"
    assert command[-1] == str(PROJECT_ROOT / "spark_jobs" / "compaction_spark.py")
    assert conf["spark.pyspark.python"] == conf["spark.pyspark.driver.python"] == sys.executable
    assert conf["spark.driver.memory"] == "1g" and "spark.archives" not in conf


@pytest.mark.parametrize(
    ("master", "addresses"),
    [
        ("spark://10.0.0.5:7077", [("10.0.0.5", 7077)]),
        ("spark://spark-master", [("spark-master", 7077)]),
        ("spark://a:7077,b:7078", [("a", 7077), ("b", 7078)]),
        ("k8s://https://api.cluster.example:6443", [("api.cluster.example", 6443)]),
        ("k8s://api.cluster.example", [("api.cluster.example", 443)]),
        ("mesos://m:5050", [("m", 5050)]),
        ("yarn", []),
    ],
)
def test_master_addresses(master, addresses):
    assert master_addresses(master) == addresses


def test_a_master_that_does_not_answer_is_named():
    down = f"spark://127.0.0.1:{free_port()}"
    with pytest.raises(MasterUnreachable, match=rf"the Spark master {down} is not reachable .*refused"):
        check_master(down)
    with socket.create_server(("127.0.0.1", 0)) as listening:
        check_master(f"spark://127.0.0.1:{listening.getsockname()[1]}")
    check_master("yarn")  # found through HADOOP_CONF_DIR: nothing to check here


def test_local_folder_of_a_code_uri(tmp_path):
    assert local_folder(str(tmp_path)) == local_folder(tmp_path.as_uri()) == tmp_path
    assert local_folder("https://artifacts.example/spark/1.4.0") is None
    assert local_folder(CODE) is None


def write_archive(path, members: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))


def test_an_archive_says_what_it_was_built_with_or_is_refused(tmp_path):
    built = PackedEnv(python="3.11.7", platform="linux-x86_64", digest="abc")
    good = tmp_path / "good.tar.gz"
    write_archive(good, {"lib/x.py": "", MANIFEST_NAME: built.to_json()})
    assert read_archive(good) == built
    check_runs_with(built, good, "3.11.2")  # same minor version: fine
    with pytest.raises(PackedEnvError, match=r"built for Python 3.11.7 but the driver runs Python 3.12.1"):
        check_runs_with(built, good, "3.12.1")

    with pytest.raises(PackedEnvError, match=r"does not exist: run `make spark-package`"):
        read_archive(tmp_path / "absent.tar.gz")
    foreign = tmp_path / "foreign.tar.gz"
    write_archive(foreign, {"bin/python": ""})
    with pytest.raises(PackedEnvError, match=r"has no imagelake-spark-env.json"):
        read_archive(foreign)
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(good.read_bytes()[:100])
    with pytest.raises(PackedEnvError, match="cannot be read"):
        read_archive(damaged)


def test_a_checkouts_venv_is_not_a_packed_environment_and_says_what_it_imports_from_outside():
    assert running() is None
    assert "imagelake" in imported_from_outside()  # this test imports it from the checkout
    assert "imagelake" not in imported_from_outside([str(PROJECT_ROOT)])


def test_the_settings_choose_the_launcher():
    local = spark_resource(load_settings({}))
    assert local.mode == "local" and local.spark_master == "local[*]"
    cluster = spark_resource(
        load_settings(
            {
                "IMAGELAKE_SPARK_MODE": "cluster",
                "IMAGELAKE_SPARK_MASTER": "k8s://https://api:6443",
                "IMAGELAKE_SPARK_CONF": "spark.kubernetes.container.image=imagelake:1.4;spark.executor.instances=4",
                "IMAGELAKE_PIPES_BUCKET": "ops",
                "IMAGELAKE_S3_ENDPOINT": "http://minio:9000",
            }
        )
    )
    assert cluster.mode == "cluster" and cluster.spark_master == "k8s://https://api:6443"
    assert cluster.spark_conf == {
        "spark.kubernetes.container.image": "imagelake:1.4",
        "spark.executor.instances": "4",
    }
    assert cluster.pipes_bucket == "ops" and cluster.aws_endpoint == "http://minio:9000"
    prod = load_settings(
        {"IMAGELAKE_ENV": "prod", "IMAGELAKE_LAKE_URL": "s3://lake", "IMAGELAKE_API_KEYS": "k:c"}
    )
    assert spark_resource(prod).mode == "emr" and spark_resource(prod).aws_endpoint == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IMAGELAKE_SPARK_MODE": "cluster"}, "needs IMAGELAKE_SPARK_MASTER set to the cluster's master"),
        ({"IMAGELAKE_SPARK_MASTER": "spark://m:7077"}, "set IMAGELAKE_SPARK_MODE=cluster"),
        ({"IMAGELAKE_SPARK_MODE": "yarn"}, "IMAGELAKE_SPARK_MODE must be one of local, cluster, emr"),
        ({"IMAGELAKE_SPARK_CONF": "spark.executor.memory"}, "IMAGELAKE_SPARK_CONF entries must be key=value"),
    ],
)
def test_spark_settings_that_disagree_are_refused(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)
