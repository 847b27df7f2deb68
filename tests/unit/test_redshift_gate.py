"""The Redshift gate: the compiled `prod` SQL of every model and test is valid Redshift.

Compiled offline (no Redshift here), checked with sqlglot's Redshift dialect
(tests/support/redshift_gate.py). The gate is shown to fail on SQL Redshift
would reject, including this very project compiled for DuckDB.
"""

from pathlib import Path

import pytest

from imagelake.settings import load_settings
from tests.support.redshift_gate import check_compiled, compile_project, redshift_problems

MODELS = {
    "stg_upload_events", "stg_image_metadata", "stg_derivatives", "stg_dead_letters",
    "stg_storage_inventory", "int_derivatives_by_image", "int_images", "daily_upload_stats",
    "client_usage_daily", "duplicate_images", "storage_usage_daily", "processing_latency_daily",
    "stats_client_usage", "stats_service_daily",
}  # fmt: skip


@pytest.fixture(scope="module")
def dbt_env(tmp_path_factory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("gate")
    return load_settings({"IMAGELAKE_DATA_DIR": str(data)}).dbt_env()


@pytest.mark.parametrize("incremental", [False, True], ids=["first-build", "incremental"])
def test_prod_sql_of_every_model_and_test_is_valid_redshift(tmp_path: Path, dbt_env, incremental: bool):
    compiled = compile_project("prod", tmp_path / "target", incremental, dbt_env)
    models = {p.stem for p in compiled.glob("models/*/*.sql")}
    assert models == MODELS
    checked, problems = check_compiled(compiled)
    assert checked > len(MODELS) + 30  # models and their data tests
    assert problems == [], "\n".join(map(str, problems))
    daily = (compiled / "models/marts/daily_upload_stats.sql").read_text()
    assert ("between cast(" in daily) is incremental  # both branches of is_incremental() were compiled
    strategy = (compiled / "analyses/changed_rows_strategy.sql").read_text()  # checked above too
    assert "delete from" in strategy and "except" in strategy
    latency = (compiled / "models/marts/processing_latency_daily.sql").read_text()
    assert "percentile_cont(0.95) within group (order by seconds_to_processed)" in latency


def test_the_gate_rejects_the_same_project_compiled_for_duckdb(tmp_path: Path, dbt_env):
    compiled = compile_project("local", tmp_path / "target", True, dbt_env)
    _, problems = check_compiled(compiled)
    reasons = {(Path(p.file).stem, p.reason.split(",")[0]) for p in problems}
    assert ("processing_latency_daily", "calls quantile_cont()") in reasons


@pytest.mark.parametrize(
    "sql",
    [
        "select quantile_cont(x, 0.5) from t",
        "select * from read_parquet('lake/raw/events/dt=*/*.parquet')",
        "select date_diff('millisecond', a, b) from t",
        "select {'a': 1} as s",
        "select [1, 2, 3] as l",
        "select x::hugeint from t",
        "select * exclude (a) from t",
        "select list_transform(xs, x -> x + 1) from t",
        "select a from t where",
        "selec a from t",
    ],
)
def test_the_gate_rejects_sql_redshift_would_not_run(sql: str):
    assert redshift_problems(sql), f"the gate let through non-Redshift SQL: {sql}"


@pytest.mark.parametrize(
    "sql",
    [
        "select datediff(millisecond, a, b) / 1000.0 from t",
        "select percentile_cont(0.5) within group (order by x) from t group by d",
        "select cast(x as decimal(18, 3)), cast(ts as date), coalesce(a, 0) from t",
        "select a, row_number() over (partition by d, a order by o) as r from t qualify r = 1",
    ],
)
def test_the_gate_accepts_redshift_sql(sql: str):
    assert redshift_problems(sql) == []
