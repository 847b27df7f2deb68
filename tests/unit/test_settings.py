from dataclasses import fields

import pytest

from imagelake.settings import RETENTION_DAYS, Settings, SettingsError, load_settings, parse_api_keys


def test_local_defaults_point_at_the_embedded_stack(tmp_path):
    s = load_settings({"IMAGELAKE_DATA_DIR": str(tmp_path)})
    assert s.env == "local"
    assert s.lake_url == (tmp_path / "lake").as_uri()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.dynamodb_endpoint == "http://127.0.0.1:8001"
    assert s.api_port == 8000
    assert s.api_keys == {"dev-key": "dev"}
    assert s.retention_days == RETENTION_DAYS == 7
    assert s.warehouse_path == tmp_path / "warehouse.duckdb"
    assert s.dbt_target == "local"


def test_prod_requires_a_lake_url_and_api_keys():
    with pytest.raises(SettingsError, match="IMAGELAKE_LAKE_URL"):
        load_settings({"IMAGELAKE_ENV": "prod", "IMAGELAKE_API_KEYS": "k:c"})
    with pytest.raises(SettingsError, match="IMAGELAKE_API_KEYS"):
        load_settings({"IMAGELAKE_ENV": "prod", "IMAGELAKE_LAKE_URL": "s3://bucket/lake"})
    s = load_settings(
        {"IMAGELAKE_ENV": "prod", "IMAGELAKE_LAKE_URL": "s3://bucket/lake", "IMAGELAKE_API_KEYS": "k:c"}
    )
    assert s.is_prod and s.dbt_target == "prod" and s.dynamodb_endpoint == ""
    assert s.lake_root_for_sql == "s3://bucket/lake"
    assert s.spark_mode == "emr"


def test_spark_runs_locally_unless_prod_or_told_otherwise(tmp_path):
    prod = {"IMAGELAKE_ENV": "prod", "IMAGELAKE_LAKE_URL": "s3://bucket/lake", "IMAGELAKE_API_KEYS": "k:c"}
    assert load_settings({"IMAGELAKE_DATA_DIR": str(tmp_path)}).spark_mode == "local"
    assert load_settings({**prod, "IMAGELAKE_SPARK_MODE": "local"}).spark_mode == "local"
    with pytest.raises(
        SettingsError, match="IMAGELAKE_SPARK_MODE must be one of local, cluster, emr, got 'yarn'"
    ):
        load_settings({**prod, "IMAGELAKE_SPARK_MODE": "yarn"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IMAGELAKE_ENV": "staging"}, "IMAGELAKE_ENV"),
        ({"IMAGELAKE_RETENTION_DAYS": "0"}, "IMAGELAKE_RETENTION_DAYS must be >= 1"),
        ({"IMAGELAKE_RETENTION_DAYS": "-3"}, "IMAGELAKE_RETENTION_DAYS must be >= 1"),
        ({"IMAGELAKE_RETENTION_DAYS": "week"}, "must be an integer"),
        ({"IMAGELAKE_KAFKA_EXTRA": "sasl.mechanism"}, "key=value"),
        ({"IMAGELAKE_API_KEYS": "nocolon"}, "key:client_id"),
        ({"IMAGELAKE_LAKE_URL": "ftp://host/lake"}, "IMAGELAKE_LAKE_URL must be s3://"),
        ({"IMAGELAKE_LAKE_URL": "file://relative/lake"}, "three slashes"),
        ({"IMAGELAKE_LAKE_URL": "s3:///no-bucket"}, "IMAGELAKE_LAKE_URL must be s3://"),
    ],
)
def test_bad_settings_name_the_setting(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_a_plain_folder_path_is_a_local_lake(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings({"IMAGELAKE_LAKE_URL": "my lake"}).lake_url == (tmp_path / "my lake").as_uri()
    assert load_settings({"IMAGELAKE_LAKE_URL": str(tmp_path)}).lake_url == tmp_path.as_uri()
    given = (tmp_path / "x").as_uri()
    assert load_settings({"IMAGELAKE_LAKE_URL": given}).lake_url == given
    assert load_settings({"IMAGELAKE_LAKE_URL": "s3://bucket/p"}).lake_url == "s3://bucket/p"


def test_api_keys_and_kafka_extras_parse():
    assert parse_api_keys("a:one, b:two") == {"a": "one", "b": "two"}
    s = load_settings({"IMAGELAKE_KAFKA_EXTRA": "security.protocol=SASL_SSL;sasl.mechanism=OAUTHBEARER"})
    assert s.kafka_extra == {"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"}


def test_dbt_env_exports_the_resolved_locations(tmp_path):
    s = load_settings({"IMAGELAKE_DATA_DIR": str(tmp_path)})
    env = s.dbt_env()
    assert env["IMAGELAKE_LAKE_ROOT"] == str(tmp_path / "lake")
    assert env["IMAGELAKE_WAREHOUSE_PATH"] == str(tmp_path / "warehouse.duckdb")
    assert env["IMAGELAKE_RETENTION_DAYS"] == "7"


def test_near_duplicate_threshold_is_a_setting_with_a_sane_range():
    assert load_settings({}).duplicate_max_distance == 6
    assert load_settings({"IMAGELAKE_DUPLICATE_MAX_DISTANCE": "0"}).duplicate_max_distance == 0
    with pytest.raises(SettingsError, match="IMAGELAKE_DUPLICATE_MAX_DISTANCE must be at most 32"):
        load_settings({"IMAGELAKE_DUPLICATE_MAX_DISTANCE": "40"})
    with pytest.raises(SettingsError, match="IMAGELAKE_DUPLICATE_MAX_DISTANCE must be >= 0"):
        load_settings({"IMAGELAKE_DUPLICATE_MAX_DISTANCE": "-1"})


def test_sensor_backpressure_setting():
    assert load_settings({}).sensor_max_queued_runs == 1
    assert load_settings({"IMAGELAKE_SENSOR_MAX_QUEUED_RUNS": "3"}).sensor_max_queued_runs == 3
    with pytest.raises(SettingsError, match="IMAGELAKE_SENSOR_MAX_QUEUED_RUNS must be >= 1"):
        load_settings({"IMAGELAKE_SENSOR_MAX_QUEUED_RUNS": "0"})


def test_warehouse_refresh_interval_setting():
    assert load_settings({}).warehouse_refresh_interval_s == 30
    assert load_settings({"IMAGELAKE_WAREHOUSE_REFRESH_INTERVAL_S": "90"}).warehouse_refresh_interval_s == 90
    with pytest.raises(SettingsError, match="IMAGELAKE_WAREHOUSE_REFRESH_INTERVAL_S must be >= 1"):
        load_settings({"IMAGELAKE_WAREHOUSE_REFRESH_INTERVAL_S": "0"})


def test_the_lake_takes_its_url_by_the_same_rule():
    from imagelake.lake.store import Lake

    for bad in ("ftp://host/lake", "file://relative/lake", "s3:///no-bucket"):
        with pytest.raises(ValueError, match="lake url must be"):
            Lake(bad)


def test_an_empty_environment_gives_each_fields_one_default():
    """load_settings reads its defaults from Settings, so each default is written once."""
    loaded, declared = load_settings({}), Settings()
    derived = {"lake_url"}  # from the data folder
    assert {f.name: getattr(loaded, f.name) for f in fields(Settings) if f.name not in derived} == {
        f.name: getattr(declared, f.name) for f in fields(Settings) if f.name not in derived
    }


def test_operator_keys_read_the_service_statistics_and_are_never_a_clients_key():
    local = load_settings({})
    assert local.operator_keys == {"dev-operator-key": "operator"}
    assert load_settings({"IMAGELAKE_OPERATOR_KEYS": "ops-1:alice, ops-2:bob"}).operator_keys == {
        "ops-1": "alice",
        "ops-2": "bob",
    }
    assert load_settings({"IMAGELAKE_OPERATOR_KEYS": ""}).operator_keys == {}  # none: service stats closed
    prod = {"IMAGELAKE_ENV": "prod", "IMAGELAKE_LAKE_URL": "s3://b/p", "IMAGELAKE_API_KEYS": "k:c"}
    assert load_settings(prod).operator_keys == {}  # prod has none unless named
    with pytest.raises(SettingsError, match="IMAGELAKE_OPERATOR_KEYS must look like 'key:operator"):
        load_settings({"IMAGELAKE_OPERATOR_KEYS": "nocolon"})
    with pytest.raises(SettingsError, match="share 1 key"):
        load_settings({"IMAGELAKE_API_KEYS": "same:client", "IMAGELAKE_OPERATOR_KEYS": "same:ops"})
