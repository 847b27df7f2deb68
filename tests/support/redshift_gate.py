"""The Redshift gate: is the SQL dbt compiles for the `prod` target valid Redshift?

There is no Redshift here, so the gate compiles the project offline (no
connection: no adapter cache, no introspection; ``assume_incremental`` picks
the first-build or the incremental branch of each model) and checks every
compiled model and data test with sqlglot's Redshift dialect:

1. it parses as Redshift SQL;
2. every function it calls is a Redshift function (sqlglot accepts any name,
   so a DuckDB-only ``quantile_cont`` or ``read_parquet`` would slip through);
3. it uses none of DuckDB's own syntax that sqlglot also accepts: struct, list
   and map literals, lambdas, ``* EXCLUDE/REPLACE``, types Redshift lacks.

It is a static check: it catches SQL that Redshift would reject for its
syntax or functions, not a missing table or a permission.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError
from sqlglot.tokens import TokenType

from imagelake.settings import PROJECT_ROOT

DBT_PROJECT = PROJECT_ROOT / "dbt_project"

#: Functions Redshift has (AWS docs, "SQL functions reference"), lower case.
REDSHIFT_FUNCTIONS = frozenset(
    [
        "abs",
        "acos",
        "add_months",
        "approximate",
        "asin",
        "atan",
        "atan2",
        "avg",
        "bit_and",
        "bit_or",
        "bool_and",
        "bool_or",
        "btrim",
        "cardinality",
        "cast",
        "cbrt",
        "ceil",
        "ceiling",
        "char_length",
        "character_length",
        "charindex",
        "checksum",
        "chr",
        "coalesce",
        "concat",
        "convert",
        "convert_timezone",
        "cos",
        "cot",
        "count",
        "cume_dist",
        "current_date",
        "current_schema",
        "current_setting",
        "current_user",
        "date",
        "date_add",
        "date_cmp",
        "date_part",
        "date_trunc",
        "dateadd",
        "datediff",
        "decode",
        "degrees",
        "dense_rank",
        "dexp",
        "dlog1",
        "dlog10",
        "exp",
        "extract",
        "first_value",
        "floor",
        "func_sha1",
        "getdate",
        "greatest",
        "group",
        "initcap",
        "is_valid_json",
        "json_extract_array_element_text",
        "json_extract_path_text",
        "json_parse",
        "lag",
        "last_day",
        "last_value",
        "lead",
        "least",
        "left",
        "len",
        "length",
        "listagg",
        "ln",
        "log",
        "lower",
        "lpad",
        "ltrim",
        "max",
        "md5",
        "median",
        "min",
        "mod",
        "months_between",
        "nextday",
        "nth_value",
        "ntile",
        "nullif",
        "nvl",
        "nvl2",
        "percent_rank",
        "percentile_cont",
        "percentile_disc",
        "pi",
        "position",
        "power",
        "quote_ident",
        "quote_literal",
        "radians",
        "random",
        "rank",
        "ratio_to_report",
        "regexp_count",
        "regexp_instr",
        "regexp_replace",
        "regexp_substr",
        "repeat",
        "replace",
        "replicate",
        "reverse",
        "right",
        "round",
        "row_number",
        "rpad",
        "rtrim",
        "sha1",
        "sha2",
        "sign",
        "sin",
        "split_part",
        "sqrt",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "strpos",
        "strtol",
        "substr",
        "substring",
        "sum",
        "sysdate",
        "tan",
        "timeofday",
        "timestamp",
        "timezone",
        "to_char",
        "to_date",
        "to_number",
        "to_timestamp",
        "translate",
        "trim",
        "trunc",
        "upper",
        "var_pop",
        "var_samp",
        "variance",
    ]
)

#: Types Redshift has (sqlglot's names for them).
REDSHIFT_TYPES = frozenset(
    getattr(exp.DataType.Type, name)
    for name in [
        "SMALLINT",
        "INT",
        "BIGINT",
        "DECIMAL",
        "FLOAT",
        "DOUBLE",
        "BOOLEAN",
        "CHAR",
        "NCHAR",
        "VARCHAR",
        "NVARCHAR",
        "TEXT",
        "BPCHAR",
        "DATE",
        "TIME",
        "TIMETZ",
        "TIMESTAMP",
        "TIMESTAMPTZ",
        "INTERVAL",
        "VARBINARY",
        "SUPER",
        "GEOMETRY",
        "GEOGRAPHY",
    ]
    if hasattr(exp.DataType.Type, name)
)

#: sqlglot nodes for syntax DuckDB has and Redshift does not.
DUCKDB_ONLY = {
    exp.Struct: "a struct literal",
    exp.Array: "a list literal",
    exp.Map: "a map literal",
    exp.Lambda: "a lambda",
    exp.PropertyEQ: "a named argument (:=)",
}


@dataclass(frozen=True)
class Problem:
    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


def redshift_problems(sql: str, name: str = "<sql>") -> list[Problem]:
    """Why ``sql`` is not valid Redshift; empty if it is."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="redshift", error_level=ErrorLevel.RAISE) if s]
    except ParseError as exc:
        return [Problem(name, f"does not parse as Redshift SQL: {str(exc).splitlines()[0]}")]
    problems = []
    tokens = sqlglot.tokenize(sql, read="redshift")
    for call, after in itertools.pairwise(tokens):
        is_call = after.token_type == TokenType.L_PAREN and call.token_type == TokenType.VAR
        if is_call and call.text.lower() not in REDSHIFT_FUNCTIONS:
            problems.append(Problem(name, f"calls {call.text}(), which Redshift does not have"))
    for statement in statements:
        for node_type, what in DUCKDB_ONLY.items():
            for node in statement.find_all(node_type):
                problems.append(
                    Problem(name, f"uses {what}, which Redshift does not have: {node.sql()[:60]}")
                )
        for star in statement.find_all(exp.Star):
            if any(star.args.get(k) for k in ("except", "replace", "rename")):
                problems.append(Problem(name, f"uses {star.sql()}: Redshift has no * EXCLUDE/REPLACE"))
        for data_type in statement.find_all(exp.DataType):
            if data_type.this not in REDSHIFT_TYPES:
                problems.append(Problem(name, f"uses type {data_type.sql()}, which Redshift does not have"))
        for table in statement.find_all(exp.Table):
            if isinstance(table.this, exp.Func):
                problems.append(Problem(name, f"reads a table function {table.this.sql()[:60]}"))
    return problems


def compile_project(target: str, target_path: Path, incremental: bool, env: dict[str, str]) -> Path:
    """``dbt compile``; returns the folder of compiled SQL.

    For ``prod`` nothing connects to Redshift. The local target (the gate's own
    check) may open its DuckDB file: DuckDB models look for lake files as they compile.
    """
    dbt = Path(sys.executable).with_name("dbt")
    offline = ["--no-introspect"] if target == "prod" else []
    command = [
        str(dbt), "compile", "--no-populate-cache", *offline,
        "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
        "--target", target, "--target-path", str(target_path),
        "--vars", f"{{assume_incremental: {str(incremental).lower()}}}",
    ]  # fmt: skip
    completed = subprocess.run(
        command, env={**os.environ, **env}, cwd=DBT_PROJECT, capture_output=True, text=True, timeout=300
    )
    if completed.returncode != 0:
        raise RuntimeError(f"dbt compile --target {target} failed:\n{completed.stdout[-4000:]}")
    return target_path / "compiled" / "imagelake"


def check_compiled(folder: Path) -> tuple[int, list[Problem]]:
    """Check every compiled model and data test under ``folder``: (files checked, problems)."""
    files = sorted(folder.rglob("*.sql"))
    problems = [p for f in files for p in redshift_problems(f.read_text(), str(f.relative_to(folder)))]
    return len(files), problems
