"""The dbt sources declare the lake tables exactly as imagelake/lake/schemas.py and layout.py do."""

import re

import pyarrow as pa
import pytest
import yaml

from imagelake.lake.layout import TABLE_PREFIXES
from imagelake.lake.schemas import SCHEMAS
from imagelake.settings import PROJECT_ROOT, RETENTION_DAYS, WAREHOUSE_LOOKBACK_DAYS
from orchestration.dbt_resource import DBT_PROJECT_DIR
from orchestration.dbt_translator import LAKE_TABLE_ASSETS


def duckdb_type(data_type: pa.DataType) -> str:
    """The DuckDB type a Parquet column of this Arrow type reads as."""
    for test, name in [
        (pa.types.is_string, "varchar"),
        (pa.types.is_int64, "bigint"),
        (pa.types.is_int32, "integer"),
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_float32, "real"),
        (pa.types.is_float64, "double"),
        (pa.types.is_binary, "blob"),
        (pa.types.is_date32, "date"),
    ]:
        if test(data_type):
            return name
    if pa.types.is_timestamp(data_type) and data_type.tz:
        return "timestamptz"
    raise AssertionError(f"add a DuckDB type for {data_type} to this test")


def lake_tables() -> dict[str, dict]:
    sources = yaml.safe_load((DBT_PROJECT_DIR / "models/staging/_sources.yml").read_text())["sources"]
    [lake] = [s for s in sources if s["name"] == "lake"]
    return {t["name"]: t for t in lake["tables"]}


def test_every_lake_table_is_a_source_and_every_source_a_lake_table():
    assert set(lake_tables()) == set(SCHEMAS) == set(TABLE_PREFIXES) == set(LAKE_TABLE_ASSETS)


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_source_columns_match_the_parquet_schema(table: str):
    declared = [(c["name"], c["data_type"]) for c in lake_tables()[table]["columns"]]
    assert declared == [(f.name, duckdb_type(f.type)) for f in SCHEMAS[table]]


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_source_reads_the_tables_folder(table: str):
    assert lake_tables()[table]["config"]["meta"]["lake_prefix"] + "/" == TABLE_PREFIXES[table]


def test_dbt_falls_back_to_the_settings_defaults_not_to_its_own():
    """dbt_project.yml needs a default for each variable (``dbt parse`` without the environment);
    the settings own the values, so the two must agree."""
    text = (PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text()
    defaults = dict(re.findall(r"env_var\('(IMAGELAKE_\w+)', '([^']*)'\)", text))
    assert defaults["IMAGELAKE_RETENTION_DAYS"] == str(RETENTION_DAYS)
    assert defaults["IMAGELAKE_LOOKBACK_DAYS"] == str(WAREHOUSE_LOOKBACK_DAYS)
