"""Row counts read from the local warehouse (DuckDB) once a build has let go of it.

DuckDB has one writer, and dbt holds the file while it builds: a local build's
tables are counted after dbt has exited, on one read-only connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb


def count_rows(warehouse: Path, relations: Mapping[str, str]) -> dict[str, int]:
    """Rows in each relation of ``relations`` (key -> relation name), by key: one read-only look.

    No relation to count, or no warehouse file, counts nothing. A relation the
    file does not hold raises :class:`duckdb.Error`, for the caller to judge.
    """
    if not relations or not warehouse.exists():
        return {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {key: _count(con, relation) for key, relation in relations.items()}


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    (rows,) = con.execute(f"select count(*) from {relation}").fetchall()[0]
    return int(rows)
