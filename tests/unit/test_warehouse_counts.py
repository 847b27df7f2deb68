"""Row counts a local warehouse run attaches to its tables' materializations."""

import dagster as dg
import duckdb
import pytest

from orchestration.dbt_resource import drain, table_row_counts

MANIFEST = {
    "nodes": {
        "model.x.t": {"relation_name": '"w"."main"."t"', "config": {"materialized": "incremental"}},
        "model.x.v": {"relation_name": '"w"."main"."v"', "config": {"materialized": "view"}},
        "model.x.gone": {"relation_name": '"w"."main"."gone"', "config": {"materialized": "table"}},
    }
}


def output(unique_id: str) -> dg.Output:
    return dg.Output(None, output_name=unique_id.split(".")[-1], metadata={"unique_id": unique_id})


def test_tables_are_counted_and_views_are_not(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table t as select * from range(7)")
        con.execute("create view v as select * from t")
    events = [output("model.x.t"), output("model.x.v"), dg.AssetCheckResult(passed=True)]
    assert table_row_counts(warehouse, MANIFEST, events) == {"model.x.t": 7}


def test_a_missing_table_is_an_error_the_run_can_catch_and_no_file_counts_nothing(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    with pytest.raises(duckdb.Error):
        table_row_counts(warehouse, MANIFEST, [output("model.x.gone")])
    assert table_row_counts(tmp_path / "none.duckdb", MANIFEST, [output("model.x.t")]) == {}


def test_drain_keeps_what_came_before_a_failure():
    def failing():
        yield 1
        yield 2
        raise RuntimeError("dbt failed")

    items, stopped = drain(failing())
    assert items == [1, 2] and isinstance(stopped, RuntimeError)
    assert drain(iter([3])) == ([3], None)
