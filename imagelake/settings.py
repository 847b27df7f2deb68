"""All of imagelake's settings and their defaults, in one place.

One switch, ``IMAGELAKE_ENV=local|prod``, picks endpoints and credentials; the
logic never branches on it. Every other module asks this one for a value
instead of reading the environment itself, so a default is written once.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Where the local stack keeps its state (IMAGELAKE_DATA_DIR): lake, Kafka, DynamoDB Local, warehouse.
DATA_DIR = PROJECT_ROOT / ".data"
#: The local warehouse's file name inside the data folder.
WAREHOUSE_FILE = "warehouse.duckdb"

#: How long every zone, the catalog and the marts' detail tables keep data.
RETENTION_DAYS = 7

#: Image formats accepted at upload, as Pillow names them.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "TIFF")

#: The Kafka topic uploads are announced on, and its partition count.
UPLOADS_TOPIC = "image-uploads"
UPLOADS_TOPIC_PARTITIONS = 3

#: The DynamoDB table that holds one catalog item per image.
CATALOG_TABLE = "imagelake-images"

# Names the AWS infrastructure (infra/aws) creates and the code addresses; one spelling each.
#: The catalog table's partition key, a string attribute holding the image id.
CATALOG_PARTITION_KEY = "image_id"
#: The catalog item attribute DynamoDB's TTL reads: when the item expires, in epoch seconds.
CATALOG_TTL_ATTRIBUTE = "expires_at"
#: The Glue database that catalogues the lake's Parquet tables for Redshift Spectrum.
GLUE_DATABASE = "imagelake_lake"
#: The Redshift external schema over GLUE_DATABASE; dbt reads it as IMAGELAKE_SPECTRUM_SCHEMA.
SPECTRUM_SCHEMA = "lake"

# Batch jobs (spark_jobs/): derivatives, compaction, garbage collection.
#: Derivative sizes (longest edge, px) and formats (webp | jpeg) made for every processed image.
DERIVATIVE_SIZES: tuple[int, ...] = (256, 512, 1024)
DERIVATIVE_FORMATS: tuple[str, ...] = ("webp",)
#: Garbage collection spares anything younger than this, referenced or not.
GC_GRACE_HOURS = 24
#: Compaction writes files of about this size (Parquet, compressed).
COMPACTION_TARGET_BYTES = 128 * 1024 * 1024
#: The Spark jobs' environment archive (make spark-package): shipped to EMR Serverless or a cluster
#: beside spark_jobs/*.py, unpacked on each executor, whose Python runs the tasks.
SPARK_PACKAGE_NAME = "imagelake-spark-env.tar.gz"
#: Where ``make spark-package`` writes the archive and the entry points (a cluster's default code folder).
SPARK_PACKAGE_DIR = PROJECT_ROOT / ".cache" / "spark-package"
#: How the Spark jobs run (IMAGELAKE_SPARK_MODE): ``local`` (spark-submit --master local[*] from this
#: checkout), ``cluster`` (spark-submit to any Spark master with the packed environment) or ``emr``
#: (EMR Serverless). orchestration/spark.py is the one place that acts on it.
SPARK_MODES: tuple[str, ...] = ("local", "cluster", "emr")
#: Attempts boto3 makes at an S3 call of Dagster Pipes (a job's context and messages), backing off
#: up to 20 s between them: enough to ride out S3 out of reach for a few seconds mid-job.
S3_RETRY_ATTEMPTS = 10
#: The Spark jobs, each an entry point ``spark_jobs/<name>_spark.py`` (:func:`spark_job_file`;
#: launched by orchestration/spark.py, shipped and import-checked by infra/spark_package.py).
SPARK_JOBS: tuple[str, ...] = ("derivatives", "compaction", "garbage_collection")


def spark_job_file(job: str) -> str:
    """A Spark job's entry point, relative to the project root (and to the code URI on EMR)."""
    return f"spark_jobs/{job}_spark.py"


def spark_home() -> Path:
    """The Spark installed here: the pip-installed PySpark's folder (its ``bin/spark-submit``,
    ``bin/spark-class`` and jars), found without importing pyspark. Named even when the shell has a
    SPARK_HOME: its JVM side must match this pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise SettingsError("pyspark is not installed here: run `make setup`")
    return Path(spec.origin).parent


def is_local_master(master: str) -> bool:
    """``local``, ``local[4]``, ``local[*]``, ``local[2,3]``: Spark inside the driver's JVM."""
    return master == "local" or master.startswith("local[")


#: How many days before today a routine warehouse refresh rebuilds, so late events
#: are counted on their upload day (dbt reads it as IMAGELAKE_LOOKBACK_DAYS).
WAREHOUSE_LOOKBACK_DAYS = 3
#: The first day the warehouse's daily partitions cover.
WAREHOUSE_FIRST_DAY = "2026-01-01"
#: A warehouse run lowers its CPU priority by this much (dbt inherits it): the marts refresh
#: is background work, and on a shared machine the real-time runs' latency comes first.
WAREHOUSE_BUILD_NICENESS = 10
#: The warehouse refresh sensor looks for new lake data at most this often (seconds). A refresh
#: is a whole `dbt build`: refreshing after every real-time batch would keep a core busy and slow
#: the real-time runs it shares the machine with (docs/benchmarks.md, bench-marts).
WAREHOUSE_REFRESH_INTERVAL_S = 30

#: The statistics endpoints (GET /v1/stats/...) answer the days this far back; older days stay in
#: the marts for analysts. The serving tables hold these days (dbt reads IMAGELAKE_STATS_HISTORY_DAYS).
STATS_HISTORY_DAYS = 400
#: The longest date range one statistics request may ask for, in days.
STATS_MAX_RANGE_DAYS = 366
#: The API looks for a newer statistics snapshot this often (seconds).
STATS_POLL_INTERVAL_S = 5.0

#: Two images are near-duplicates when their 64-bit perceptual hashes differ in at most this many bits.
DUPLICATE_MAX_DISTANCE = 6
#: The default size cap of one upload (IMAGELAKE_MAX_UPLOAD_BYTES).
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
#: The default cap on an image's pixels, checked on its header before any decode.
MAX_IMAGE_PIXELS = 64_000_000
#: The API key of ``make dev`` (key -> client id); prod requires IMAGELAKE_API_KEYS.
LOCAL_API_KEYS: Mapping[str, str] = {"dev-key": "dev"}
#: The operator key of ``make dev`` (key -> operator name): it reads the service's statistics
#: (GET /v1/stats/service). Prod has none unless IMAGELAKE_OPERATOR_KEYS names some.
LOCAL_OPERATOR_KEYS: Mapping[str, str] = {"dev-operator-key": "operator"}


#: How clients authenticate to Kafka: plaintext locally, IAM on Amazon MSK.
KAFKA_AUTH_MODES: tuple[str, ...] = ("none", "msk-iam")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        value = default
    else:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _int_list(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get(name)
    if not raw:
        return default
    try:
        values = tuple(int(p) for p in raw.split(",") if p.strip())
    except ValueError:
        raise SettingsError(f"{name} must be comma-separated integers, got {raw!r}") from None
    if not values or min(values) < 1:
        raise SettingsError(f"{name} must list positive integers, got {raw!r}")
    return values


def _choices(
    env: Mapping[str, str], name: str, default: tuple[str, ...], allowed: tuple[str, ...]
) -> tuple[str, ...]:
    raw = env.get(name)
    if not raw:
        return default
    values = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
    unknown = sorted(set(values) - set(allowed))
    if not values or unknown:
        raise SettingsError(f"{name} must be a comma-separated subset of {', '.join(allowed)}, got {raw!r}")
    return values


def _pairs(env: Mapping[str, str], name: str) -> dict[str, str]:
    """``key=value;key2=value2`` as a mapping (values may hold ``=``)."""
    pairs = {}
    for pair in filter(None, (p.strip() for p in env.get(name, "").split(";"))):
        k, sep, v = pair.partition("=")
        if not sep or not k.strip():
            raise SettingsError(f"{name} entries must be key=value, got {pair!r}")
        pairs[k.strip()] = v.strip()
    return pairs


def _spark_launch(env: Mapping[str, str], prod: bool) -> tuple[str, str]:
    """(mode, master), checked against each other: a cluster needs a cluster's master, local mode a
    local one (``spark://`` with mode local would quietly run nothing where it was meant to)."""
    mode = env.get("IMAGELAKE_SPARK_MODE") or ("emr" if prod else Settings.spark_mode)
    if mode not in SPARK_MODES:
        raise SettingsError(f"IMAGELAKE_SPARK_MODE must be one of {', '.join(SPARK_MODES)}, got {mode!r}")
    master = env.get("IMAGELAKE_SPARK_MASTER") or Settings.spark_master
    if mode == "cluster" and is_local_master(master):
        raise SettingsError(
            "IMAGELAKE_SPARK_MODE=cluster needs IMAGELAKE_SPARK_MASTER set to the cluster's master "
            f"(spark://host:7077, k8s://https://host:443, yarn), got {master!r}"
        )
    if mode == "local" and not is_local_master(master):
        raise SettingsError(
            f"IMAGELAKE_SPARK_MASTER={master} is a cluster's master: set IMAGELAKE_SPARK_MODE=cluster "
            "to run the jobs there with the packed environment (docs/deploy.md)"
        )
    return mode, master


def _duplicate_distance(env: Mapping[str, str]) -> int:
    value = _int(env, "IMAGELAKE_DUPLICATE_MAX_DISTANCE", Settings.duplicate_max_distance, minimum=0)
    if value > 32:
        raise SettingsError(
            f"IMAGELAKE_DUPLICATE_MAX_DISTANCE must be at most 32 of the hash's 64 bits, got {value}"
        )
    return value


def check_lake_url(url: str) -> None:
    """The one rule for the lake's URL (settings and ``store.Lake`` apply it): ``file:///abs/path``
    or ``s3://bucket/prefix``. ``file://relative/path`` would put the lake in ``/path``
    (``relative`` parses as a host), so it is refused rather than guessed at."""
    parsed = urlparse(url)
    local = parsed.scheme == "file" and parsed.netloc in ("", "localhost") and parsed.path.startswith("/")
    if not (local or (parsed.scheme == "s3" and parsed.netloc)):
        raise ValueError(
            f"lake url must be s3://bucket/prefix or file:///absolute/path (three slashes), got {url!r}"
        )


def normalize_lake_url(raw: str) -> str:
    """``IMAGELAKE_LAKE_URL`` as a URL: a plain path is taken as a local folder."""
    if not urlparse(raw).scheme:
        return Path(raw).expanduser().resolve().as_uri()
    try:
        check_lake_url(raw)
    except ValueError:
        raise SettingsError(
            "IMAGELAKE_LAKE_URL must be s3://bucket/prefix, file:///absolute/path (three slashes) "
            f"or a plain folder path, got {raw!r}"
        ) from None
    return raw


def parse_api_keys(raw: str, name: str = "IMAGELAKE_API_KEYS", holder: str = "client_id") -> dict[str, str]:
    """Parse ``key:client_id,key2:client2`` into a key -> client id map (``holder``: what a key names)."""
    keys: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, client = pair.partition(":")
        if not sep or not key or not client:
            raise SettingsError(f"{name} must look like 'key:{holder},key2:{holder}2', got an entry {pair!r}")
        keys[key] = client
    return keys


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one process; build with :func:`get_settings`."""

    env: str = "local"
    data_dir: Path = DATA_DIR
    #: ``file:///abs/path`` or ``s3://bucket/prefix``.
    lake_url: str = ""
    #: S3-compatible endpoint override (moto in tests); empty for AWS itself.
    s3_endpoint: str = ""
    aws_region: str = "us-east-1"

    kafka_bootstrap: str = "127.0.0.1:9092"
    #: ``none`` (plaintext, local) or ``msk-iam`` (SASL/OAUTHBEARER with a signed AWS token, MSK).
    kafka_auth: str = "none"
    #: Extra librdkafka properties (prod: SASL/IAM for MSK), ``k=v;k2=v2``.
    kafka_extra: Mapping[str, str] = field(default_factory=dict)
    uploads_topic: str = UPLOADS_TOPIC
    uploads_topic_partitions: int = UPLOADS_TOPIC_PARTITIONS
    kafka_delivery_timeout_s: float = 5.0

    dynamodb_endpoint: str = "http://127.0.0.1:8001"
    catalog_table: str = CATALOG_TABLE

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    #: The Dagster UI of ``make dev``.
    ui_port: int = 3000
    api_keys: Mapping[str, str] = field(default_factory=lambda: dict(LOCAL_API_KEYS))
    #: Keys that read the service's statistics (key -> operator name); never a client's key.
    operator_keys: Mapping[str, str] = field(default_factory=lambda: dict(LOCAL_OPERATOR_KEYS))
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_image_pixels: int = MAX_IMAGE_PIXELS
    allowed_formats: tuple[str, ...] = ALLOWED_FORMATS

    retention_days: int = RETENTION_DAYS
    sensor_interval_s: int = 5
    sensor_batch_size: int = 500
    sensor_max_runs_per_tick: int = 12
    kafka_poll_timeout_s: float = 10.0

    warehouse_path: Path = DATA_DIR / WAREHOUSE_FILE
    dbt_target: str = "local"
    warehouse_lookback_days: int = WAREHOUSE_LOOKBACK_DAYS
    warehouse_refresh_interval_s: int = WAREHOUSE_REFRESH_INTERVAL_S

    derivative_sizes: tuple[int, ...] = DERIVATIVE_SIZES
    derivative_formats: tuple[str, ...] = DERIVATIVE_FORMATS
    gc_grace_hours: float = GC_GRACE_HOURS
    compaction_target_bytes: int = COMPACTION_TARGET_BYTES
    #: ``local`` | ``cluster`` | ``emr`` (SPARK_MODES); ``emr`` by default in prod, ``local`` elsewhere.
    spark_mode: str = "local"
    #: The master ``spark-submit`` is given: ``local[*]``, or a cluster's (``spark://host:7077``,
    #: ``k8s://https://host:443``, ``yarn``) in cluster mode. Unused on EMR Serverless.
    spark_master: str = "local[*]"
    #: Extra Spark conf for every job, in every mode (executor memory, a Kubernetes image, ...).
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    #: EMR: the EMR Serverless application and job role (infra/aws processing stack outputs).
    emr_application_id: str = ""
    emr_job_role_arn: str = ""
    #: Where the jobs' code and packed environment are (``make spark-package``'s folder): on EMR
    #: ``s3://<ops bucket>/spark/<version>``; for a cluster a folder on the launching machine (the
    #: default, SPARK_PACKAGE_DIR) or a URI every executor can fetch.
    spark_code_uri: str = ""
    #: The bucket Dagster Pipes' context and messages go through (its ``pipes/`` prefix): EMR and cluster.
    pipes_bucket: str = ""

    #: Near-duplicate threshold: perceptual-hash Hamming distance (0-64 bits).
    duplicate_max_distance: int = DUPLICATE_MAX_DISTANCE
    #: The Kafka sensor starts no new batches while this many batch runs wait in the run queue:
    #: their events join the next tick's (larger) batches instead of queueing more runs.
    sensor_max_queued_runs: int = 1
    #: Batch runs of one Kafka partition queued or running at once. A partition at the limit plans
    #: nothing: its events wait on Kafka and the next batch takes them all, so under load batches
    #: grow instead of runs multiplying (every run pays a process start; docs/design.md).
    sensor_runs_per_partition: int = 1
    #: Batch runs queued or running at once over all partitions (0: no limit but the per-partition one).
    #: Where runs share the machine's cores with everything else, fewer runs at once take larger
    #: batches, and each run's fixed cost (a process, Dagster's import, its database connections) is
    #: shared by more images (docs/benchmarks.md, bench-load). The partitions with most events waiting
    #: go first.
    sensor_max_runs_in_flight: int = 0

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"

    @property
    def lake_root_for_sql(self) -> str:
        """The lake's root as DuckDB and dbt address it: a local path or an ``s3://`` url."""
        if self.lake_url.startswith("file://"):
            return unquote(urlparse(self.lake_url).path)
        return self.lake_url.rstrip("/")

    def dbt_env(self) -> dict[str, str]:
        """The environment dbt reads (profiles.yml and sources use ``env_var``)."""
        env = {
            "IMAGELAKE_LAKE_ROOT": self.lake_root_for_sql,
            "IMAGELAKE_WAREHOUSE_PATH": str(self.warehouse_path),
            "IMAGELAKE_DBT_TARGET": self.dbt_target,
            "IMAGELAKE_RETENTION_DAYS": str(self.retention_days),
            "IMAGELAKE_LOOKBACK_DAYS": str(self.warehouse_lookback_days),
            "IMAGELAKE_STATS_HISTORY_DAYS": str(STATS_HISTORY_DAYS),
        }
        if self.dbt_target == "local" and self.lake_url.startswith("s3://"):
            # DuckDB reading the lake on S3 (the production-mode stack's stand-in for Redshift).
            from imagelake.warehouse.duckdb_s3 import duckdb_s3_env

            env.update(duckdb_s3_env(self))
        return env

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and tools use this)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping (``os.environ`` by default)."""
    env = os.environ if env is None else env
    name = env.get("IMAGELAKE_ENV") or Settings.env
    if name not in ("local", "prod"):
        raise SettingsError(f"IMAGELAKE_ENV must be 'local' or 'prod', got {name!r}")

    data_dir = Path(env.get("IMAGELAKE_DATA_DIR") or Settings.data_dir).resolve()
    lake_url = env.get("IMAGELAKE_LAKE_URL", "")
    if not lake_url:
        if name == "prod":
            raise SettingsError("IMAGELAKE_LAKE_URL (s3://bucket/prefix) is required when IMAGELAKE_ENV=prod")
        lake_url = (data_dir / "lake").as_uri()
    lake_url = normalize_lake_url(lake_url)

    api_keys_raw = env.get("IMAGELAKE_API_KEYS", "")
    if api_keys_raw:
        api_keys = parse_api_keys(api_keys_raw)
    elif name == "prod":
        raise SettingsError("IMAGELAKE_API_KEYS is required when IMAGELAKE_ENV=prod")
    else:
        api_keys = dict(LOCAL_API_KEYS)

    operator_keys_raw = env.get("IMAGELAKE_OPERATOR_KEYS")
    if operator_keys_raw is not None:
        operator_keys = parse_api_keys(operator_keys_raw, "IMAGELAKE_OPERATOR_KEYS", "operator")
    else:
        operator_keys = {} if name == "prod" else dict(LOCAL_OPERATOR_KEYS)
    shared = sorted(set(operator_keys) & set(api_keys))
    if shared:
        raise SettingsError(
            f"IMAGELAKE_OPERATOR_KEYS and IMAGELAKE_API_KEYS share {len(shared)} key(s): an operator key "
            "reads every client's figures, so it must not also be a client's key"
        )

    kafka_extra = _pairs(env, "IMAGELAKE_KAFKA_EXTRA")

    kafka_auth = env.get("IMAGELAKE_KAFKA_AUTH") or ("msk-iam" if name == "prod" else Settings.kafka_auth)
    if kafka_auth not in KAFKA_AUTH_MODES:
        raise SettingsError(
            f"IMAGELAKE_KAFKA_AUTH must be one of {', '.join(KAFKA_AUTH_MODES)}, got {kafka_auth!r}"
        )

    retention = _int(env, "IMAGELAKE_RETENTION_DAYS", Settings.retention_days, minimum=1)
    spark_mode, spark_master = _spark_launch(env, prod=name == "prod")

    return Settings(
        env=name,
        data_dir=data_dir,
        lake_url=lake_url,
        s3_endpoint=env.get("IMAGELAKE_S3_ENDPOINT", ""),
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or Settings.aws_region,
        kafka_bootstrap=env.get("IMAGELAKE_KAFKA_BOOTSTRAP", Settings.kafka_bootstrap),
        kafka_auth=kafka_auth,
        kafka_extra=kafka_extra,
        uploads_topic=env.get("IMAGELAKE_UPLOADS_TOPIC", Settings.uploads_topic),
        uploads_topic_partitions=_int(
            env, "IMAGELAKE_UPLOADS_TOPIC_PARTITIONS", Settings.uploads_topic_partitions, 1
        ),
        kafka_delivery_timeout_s=_float(
            env, "IMAGELAKE_KAFKA_DELIVERY_TIMEOUT_S", Settings.kafka_delivery_timeout_s
        ),
        dynamodb_endpoint=env.get(
            "IMAGELAKE_DYNAMODB_ENDPOINT", "" if name == "prod" else Settings.dynamodb_endpoint
        ),
        catalog_table=env.get("IMAGELAKE_CATALOG_TABLE", Settings.catalog_table),
        api_host=env.get("IMAGELAKE_API_HOST", Settings.api_host),
        api_port=_int(env, "IMAGELAKE_API_PORT", Settings.api_port, 1),
        ui_port=_int(env, "IMAGELAKE_UI_PORT", Settings.ui_port, 1),
        api_keys=api_keys,
        operator_keys=operator_keys,
        max_upload_bytes=_int(env, "IMAGELAKE_MAX_UPLOAD_BYTES", Settings.max_upload_bytes, 1),
        max_image_pixels=_int(env, "IMAGELAKE_MAX_IMAGE_PIXELS", Settings.max_image_pixels, 1),
        retention_days=retention,
        sensor_interval_s=_int(env, "IMAGELAKE_SENSOR_INTERVAL_S", Settings.sensor_interval_s, 1),
        sensor_batch_size=_int(env, "IMAGELAKE_SENSOR_BATCH_SIZE", Settings.sensor_batch_size, 1),
        sensor_max_runs_per_tick=_int(
            env, "IMAGELAKE_SENSOR_MAX_RUNS_PER_TICK", Settings.sensor_max_runs_per_tick, 1
        ),
        kafka_poll_timeout_s=_float(env, "IMAGELAKE_KAFKA_POLL_TIMEOUT_S", Settings.kafka_poll_timeout_s),
        warehouse_path=Path(env.get("IMAGELAKE_WAREHOUSE_PATH") or data_dir / WAREHOUSE_FILE),
        dbt_target=env.get("IMAGELAKE_DBT_TARGET") or ("prod" if name == "prod" else "local"),
        derivative_sizes=_int_list(env, "IMAGELAKE_DERIVATIVE_SIZES", Settings.derivative_sizes),
        derivative_formats=_choices(
            env, "IMAGELAKE_DERIVATIVE_FORMATS", Settings.derivative_formats, allowed=("webp", "jpeg")
        ),
        gc_grace_hours=_float(env, "IMAGELAKE_GC_GRACE_HOURS", Settings.gc_grace_hours),
        compaction_target_bytes=_int(
            env, "IMAGELAKE_COMPACTION_TARGET_BYTES", Settings.compaction_target_bytes, 1
        ),
        spark_mode=spark_mode,
        spark_master=spark_master,
        spark_conf=_pairs(env, "IMAGELAKE_SPARK_CONF"),
        emr_application_id=env.get("IMAGELAKE_EMR_APPLICATION_ID", ""),
        emr_job_role_arn=env.get("IMAGELAKE_EMR_JOB_ROLE_ARN", ""),
        spark_code_uri=env.get("IMAGELAKE_SPARK_CODE_URI", ""),
        pipes_bucket=env.get("IMAGELAKE_PIPES_BUCKET", ""),
        warehouse_lookback_days=_int(env, "IMAGELAKE_LOOKBACK_DAYS", Settings.warehouse_lookback_days, 0),
        warehouse_refresh_interval_s=_int(
            env, "IMAGELAKE_WAREHOUSE_REFRESH_INTERVAL_S", Settings.warehouse_refresh_interval_s, 1
        ),
        duplicate_max_distance=_duplicate_distance(env),
        sensor_max_queued_runs=_int(
            env, "IMAGELAKE_SENSOR_MAX_QUEUED_RUNS", Settings.sensor_max_queued_runs, 1
        ),
        sensor_runs_per_partition=_int(
            env, "IMAGELAKE_SENSOR_RUNS_PER_PARTITION", Settings.sensor_runs_per_partition, 1
        ),
        sensor_max_runs_in_flight=_int(
            env, "IMAGELAKE_SENSOR_MAX_RUNS_IN_FLIGHT", Settings.sensor_max_runs_in_flight, 0
        ),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return load_settings()
