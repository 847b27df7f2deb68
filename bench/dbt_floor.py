"""dbt's own cost per build: a project of the warehouse's shape whose nodes do no work.

A build of one day can be no cheaper than what dbt spends on its nodes before
any of them reads a row: each node's Jinja context, compiling it, its events, a
connection. This writes a project with as many models and data tests as the
warehouse, where a model runs no SQL at all (a materialization that only
reports success) and a data test is a ``not_null`` over a one-row table, so the
benchmark can time that floor on the same machine in the same run and say
which ratio it leaves room for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

COLUMNS = "abcd"

#: A materialization that runs no SQL: what a model node costs dbt by itself.
NOOP_MATERIALIZATION = """\
{% materialization noop, adapter='duckdb' -%}
  {%- call noop_statement('main', 'OK', 'OK', 0) -%}{%- endcall -%}
  {{ return({'relations': [this]}) }}
{%- endmaterialization %}
"""


@dataclass(frozen=True)
class Shape:
    """How many nodes of each kind a ``dbt build`` runs."""

    models: int
    data_tests: int


def shape_of(nodes: Iterable[str]) -> Shape:
    """The node counts of a parsed project, from each node's resource type; unit tests
    are left out, as a warehouse run leaves them out."""
    kinds = Counter(nodes)
    return Shape(models=kinds["model"], data_tests=kinds["test"])


def write_project(root: Path, shape: Shape, threads: int) -> None:
    """A dbt project at ``root`` with ``shape``'s nodes, over ``root/floor.duckdb``.

    The models' tables are created here, once, with one row each; the tests are
    spread over them, one ``not_null`` per column.
    """
    if shape.models < 1 or shape.data_tests > shape.models * len(COLUMNS):
        raise ValueError(
            f"{shape.data_tests} tests do not fit {shape.models} models of {len(COLUMNS)} columns"
        )
    names = [f"model_{i}" for i in range(shape.models)]
    for folder in ("models", "macros"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "dbt_project.yml").write_text(
        "name: dbt_floor\nversion: '1.0.0'\nconfig-version: 2\nprofile: dbt_floor\n"
        "flags:\n  send_anonymous_usage_stats: false\n"
    )
    (root / "profiles.yml").write_text(
        "dbt_floor:\n  target: local\n  outputs:\n    local:\n      type: duckdb\n"
        f"      path: {root / 'floor.duckdb'}\n      threads: {threads}\n"
    )
    (root / "macros" / "noop.sql").write_text(NOOP_MATERIALIZATION)
    select = "select " + ", ".join(f"{n} as {c}" for n, c in enumerate(COLUMNS, 1))
    tested: list[list[str]] = [[] for _ in names]
    for t in range(shape.data_tests):
        tested[t % len(names)].append(COLUMNS[t // len(names)])
    schema = ["version: 2", "models:"]
    with duckdb.connect(str(root / "floor.duckdb")) as con:
        for name, columns in zip(names, tested, strict=True):
            con.execute(f"create or replace table {name} as {select}")
            (root / "models" / f"{name}.sql").write_text(f"{{{{ config(materialized='noop') }}}}\n{select}\n")
            if columns:
                schema += [f"  - name: {name}", "    columns:"]
                schema += [f"      - name: {c}\n        data_tests: [not_null]" for c in columns]
    (root / "models" / "_models.yml").write_text("\n".join(schema) + "\n")
