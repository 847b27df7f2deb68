"""The dbt resource's two shortcuts (orchestration/dbt_resource.py) give what dagster-dbt would have found."""

import inspect
import re
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource

from imagelake.settings import load_settings
from orchestration.dbt_resource import dbt_resource


def test_the_version_told_is_the_one_dbt_reports():
    resource = dbt_resource(load_settings({}))
    reported = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert str(resource._cli_version) == re.search(r"(\d+\.\d+\.\d+)", reported).group(1)


def test_dagster_dbt_still_asks_through_the_hooks_we_override():
    cli = inspect.getsource(DbtCliResource.cli)
    assert "self._cli_version" in cli and "self._initialize_dbt_core_adapter(" in cli


def test_no_adapter_is_loaded_for_duckdb_and_one_is_for_redshift():
    assert dbt_resource(load_settings({}))._initialize_dbt_core_adapter(["build"]) is None
    prod = dbt_resource(load_settings({"IMAGELAKE_DBT_TARGET": "prod"}))
    adapter = prod._initialize_dbt_core_adapter(["build"])  # dbt connects lazily: no Redshift needed
    assert type(adapter).__name__ == "RedshiftAdapter"
