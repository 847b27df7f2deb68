"""The production-mode stack runs on the Helm values' instance, departing only where it says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from imagelake.settings import PROJECT_ROOT
from infra.k8s.instance import load_values, render_instance
from infra.local.prod_instance import (
    IMAGE_WORKDIR,
    SUBSTITUTIONS,
    code_servers,
    prod_mode_instance,
    workspace,
)


def leaves(tree: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a nested mapping by dotted path, section names without their storage prefix."""
    if not isinstance(tree, dict):
        return {path: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out |= leaves(value, f"{path}.{key}" if path else key)
    return out


def substituted(path: str) -> bool:
    """Whether a changed leaf is one ``SUBSTITUTIONS`` names (storage sections share postgres_db)."""
    return any(path == name or path.startswith(f"{name}.") or f".{name}" in path for name in SUBSTITUTIONS)


def test_only_the_named_settings_differ_from_the_helm_values():
    production = leaves(render_instance(load_values()))
    local = leaves(prod_mode_instance(load_values(), 15432, "ops-bucket", "http://127.0.0.1:9"))
    changed = {p for p in production.keys() | local.keys() if production.get(p) != local.get(p)}
    assert changed, "the run launcher at least cannot be the same"
    assert all(substituted(p) for p in changed), sorted(p for p in changed if not substituted(p))
    # what must come from the values: storage classes, the run coordinator, run retries and monitoring
    for kept in (
        "run_storage.class",
        "event_log_storage.class",
        "schedule_storage.class",
        "run_coordinator.class",
        "run_retries.max_retries",
        "run_retries.retry_on_asset_or_op_failure",
        "run_monitoring.enabled",
        "concurrency.runs.max_concurrent_runs",
        "concurrency.pools.default_limit",
        "run_storage.config.postgres_db.params.sslmode",
        "run_storage.config.postgres_db.scheme",
        "run_storage.config.postgres_db.password.env",
    ):
        assert local[kept] == production[kept], kept
    assert local["run_launcher.class"] == "DefaultRunLauncher"
    assert local["compute_logs.config.endpoint_url"] == "http://127.0.0.1:9"
    assert local["run_storage.config.postgres_db.port"] == 15432


@pytest.mark.parametrize("which", ["production", "production mode"])
def test_the_instance_is_one_dagster_accepts(tmp_path: Path, which: str):
    """Dagster validates an instance when it loads it: a run coordinator limit beside a `concurrency`
    section is refused, which only running it showed."""
    values = load_values()
    instance = (
        render_instance(values)
        if which == "production"
        else prod_mode_instance(values, 15432, "ops-bucket", "http://127.0.0.1:9")
    )
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_postgres_is_reached_through_the_driver_the_image_installs():
    """SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; dagster-postgres installs psycopg2."""
    db = render_instance(load_values())["run_storage"]["config"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    import psycopg2  # noqa: F401  (installed with dagster-postgres: the deploy extra)


def test_the_code_servers_run_the_containers_command_from_this_checkout():
    servers = code_servers(load_values())
    locations = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    assert [s.name for s in servers] == [loc["python_module"]["location_name"] for loc in locations]
    for server, location in zip(servers, locations, strict=True):
        command = server.command(Path("/venv/bin/python"), PROJECT_ROOT, 4000)
        # The container's `dagster api grpc` arguments, served so that the runs it starts fork.
        assert command[:3] == ["/venv/bin/python", "-m", "orchestration.code_server"]
        assert command[command.index("--module-name") + 1] == location["python_module"]["module_name"]
        assert command[command.index("--working-directory") + 1] == str(PROJECT_ROOT)
        assert IMAGE_WORKDIR in server.args and command[-4:] == ["--host", "127.0.0.1", "--port", "4000"]
    assert workspace(servers, {s.name: 4000 + i for i, s in enumerate(servers)}) == {
        "load_from": [
            {"grpc_server": {"host": "127.0.0.1", "port": 4000 + i, "location_name": s.name}}
            for i, s in enumerate(servers)
        ]
    }
