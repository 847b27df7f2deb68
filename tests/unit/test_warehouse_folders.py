"""dbt's per-build folders do not pile up: a failed or stopped build's folder goes after a day."""

import os
from datetime import UTC, datetime, timedelta

from imagelake.warehouse.build_folders import BUILD_FOLDER_KEEP, prune_build_folders

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def folder(target, name: str, age: timedelta):
    path = target / name
    (path / "run").mkdir(parents=True)
    (path / "dbt.log").write_text("error: ...")
    stamp = (NOW - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_old_folders_of_the_op_go_and_the_rest_stay(tmp_path):
    old = folder(tmp_path, "warehouse_models-1a5b7e9-c826193", BUILD_FOLDER_KEEP + timedelta(minutes=1))
    recent = folder(tmp_path, "warehouse_models-20ea050-378ac66", BUILD_FOLDER_KEEP - timedelta(minutes=1))
    other = folder(tmp_path, "docs-25c12ea-5a3bb13", timedelta(days=30))
    (tmp_path / "manifest.json").write_text("{}")

    assert prune_build_folders(tmp_path, "warehouse_models", now=NOW) == [old.name]
    assert not old.exists()
    assert recent.exists() and other.exists() and (tmp_path / "manifest.json").exists()
    assert prune_build_folders(tmp_path, "warehouse_models", now=NOW) == []  # a re-run removes nothing more
