"""Reading the serving tables (dbt schema ``serving``) out of the warehouse, to publish them.

Only the build reads them, right after dbt has written them and while it still holds its turn
(imagelake/warehouse/build_turns.py): the API never opens the warehouse. Locally that is a
read-only DuckDB connection; in prod a Redshift connection with the credentials dbt's ``prod``
profile uses (dbt_project/profiles.yml), through redshift_connector, which dbt-redshift brings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import duckdb
import pyarrow as pa

from imagelake.settings import Settings

#: The dbt schema of the tables the statistics API serves (dbt_project.yml, models/serving/).
SERVING_SCHEMA = "serving"


def read_serving_tables(settings: Settings, models: Mapping[str, str]) -> dict[str, pa.Table]:
    """Each serving model of ``models`` (name -> dbt model) as an Arrow table, by name."""
    if settings.dbt_target == "local":
        with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
            return {
                name: con.execute(f"select * from {SERVING_SCHEMA}.{model}").to_arrow_table()
                for name, model in models.items()
            }
    return _from_redshift(models)


def _from_redshift(models: Mapping[str, str]) -> dict[str, pa.Table]:  # pragma: no cover - needs Redshift
    import redshift_connector

    with redshift_connector.connect(
        host=os.environ["REDSHIFT_HOST"],
        port=int(os.environ.get("REDSHIFT_PORT", "5439")),
        user=os.environ.get("REDSHIFT_USER", "imagelake_dbt"),
        password=os.environ.get("REDSHIFT_PASSWORD", ""),
        database=os.environ.get("REDSHIFT_DATABASE", "imagelake"),
        ssl=True,
    ) as con:
        tables = {}
        for name, model in models.items():
            cursor = con.cursor()
            cursor.execute(f"select * from {SERVING_SCHEMA}.{model}")
            tables[name] = pa.Table.from_pandas(cursor.fetch_dataframe(), preserve_index=False)
        return tables
