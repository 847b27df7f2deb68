"""The floor project bench-marts times has the warehouse's shape, and its nodes do no work."""

from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner

from bench import dbt_floor


def test_shape_counts_models_and_data_tests_and_leaves_out_the_rest():
    kinds = ["model"] * 3 + ["test"] * 5 + ["unit_test", "seed", "analysis"]
    assert dbt_floor.shape_of(kinds) == dbt_floor.Shape(models=3, data_tests=5)


def test_the_written_project_parses_to_the_shape_and_its_tables_exist(tmp_path: Path):
    shape = dbt_floor.Shape(models=3, data_tests=10)
    dbt_floor.write_project(tmp_path, shape, threads=2)
    where = ["--project-dir", str(tmp_path), "--profiles-dir", str(tmp_path), "--quiet"]
    parsed = dbtRunner().invoke(["parse", *where, "--target-path", str(tmp_path / "target")])
    assert parsed.success, parsed.exception
    nodes = parsed.result.nodes.values()
    assert dbt_floor.shape_of(n.resource_type for n in nodes) == shape
    assert {n.config.materialized for n in nodes if n.resource_type == "model"} == {"noop"}
    with duckdb.connect(str(tmp_path / "floor.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from model_2").fetchone() == (1,)


def test_more_tests_than_columns_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="do not fit"):
        dbt_floor.write_project(tmp_path, dbt_floor.Shape(models=1, data_tests=5), threads=1)
