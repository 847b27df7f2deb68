"""The code server of production mode forks its run workers from a process that imported the location."""

from __future__ import annotations

import logging
import threading

import pytest
from dagster._core.utils import FuturesAwareThreadPoolExecutor
from dagster._grpc import server as grpc_server

from orchestration.code_server import (
    CodeServerError,
    forking_context,
    instance_modules,
    preload_modules,
    start_runs_with,
    working_directory,
)
from tests.support.forkserver_probe import report_loaded

ARGS = ["--module-name", "orchestration.definitions", "--working-directory", "/opt/imagelake"]


def test_the_location_module_is_what_the_forkserver_preloads():
    assert preload_modules(ARGS) == ["orchestration.definitions"]
    assert preload_modules(["-m", "orchestration.warehouse_definitions"]) == [
        "orchestration.warehouse_definitions"
    ]
    assert working_directory(ARGS) == "/opt/imagelake"
    assert working_directory(["-m", "x"]) is None


@pytest.mark.parametrize("args", [[], ["--python-file", "defs.py"], ["--module-name"]])
def test_a_location_not_given_by_module_is_refused_with_what_to_give(args):
    with pytest.raises(CodeServerError, match="--module-name"):
        preload_modules(args)


def test_a_forked_run_worker_starts_with_the_location_imported():
    """The probe's module imports nothing of ours, so the location can only come from the preload."""
    context = forking_context(["orchestration.definitions"])
    queue = context.Queue()
    worker = context.Process(target=report_loaded, args=("orchestration.definitions", queue))
    worker.start()
    worker.join(120)
    assert worker.exitcode == 0
    assert queue.get(timeout=5) is True


def _server() -> grpc_server.DagsterApiServer:
    stop = threading.Event()
    server = grpc_server.DagsterApiServer(
        stop, logging.getLogger(__name__), FuturesAwareThreadPoolExecutor(1)
    )
    stop.set()
    return server


def test_dagsters_grpc_server_starts_runs_from_the_given_context(monkeypatch):
    monkeypatch.setattr(grpc_server.DagsterApiServer, "__init__", grpc_server.DagsterApiServer.__init__)
    assert _server()._mp_ctx.get_start_method() == "spawn"  # what this module exists to change
    context = forking_context([])
    start_runs_with(context)
    assert _server()._mp_ctx is context


def test_a_dagster_that_moved_the_start_method_fails_at_start_up(monkeypatch):
    original = grpc_server.DagsterApiServer.__init__

    def without_context(self, *args, **kwargs):
        original(self, *args, **kwargs)
        del self._mp_ctx

    monkeypatch.setattr(grpc_server.DagsterApiServer, "__init__", without_context)
    start_runs_with(forking_context([]))
    with pytest.raises(CodeServerError, match="dagster api grpc"):
        _server()


def test_the_instances_classes_are_preloaded_as_the_instance_names_them(tmp_path):
    (tmp_path / "dagster.yaml").write_text(
        "run_storage:\n  module: dagster_postgres.run_storage\n  class: PostgresRunStorage\n"
        "compute_logs:\n  module: dagster_aws.s3.compute_log_manager\n  class: S3ComputeLogManager\n"
        "  config: {bucket: ops, prefix: logs}\n"
        "event_log_storage:\n  module: dagster_postgres.event_log\n  class: PostgresEventLogStorage\n"
        "  config: {postgres_db: {username: dagster, password: {env: DAGSTER_PG_PASSWORD}}}\n"
    )
    assert instance_modules(str(tmp_path)) == [
        "dagster_postgres.run_storage",
        "dagster_aws.s3.compute_log_manager",
        "dagster_postgres.event_log",
    ]
    assert instance_modules(str(tmp_path / "absent")) == []
    assert instance_modules(None) == []


def test_the_runs_preload_leaves_boto3s_default_session_with_parsed_models(monkeypatch):
    """A run's first client then costs no model parsing; and no credentials were looked up for it."""
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    from orchestration import run_preload

    run_preload.warm_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    assert session._session._credentials is None  # nothing resolved: the keys were the clients' own
    loader = session._session.get_component("data_loader")
    loaded = {key[1] for key in loader._cache if key[0] == "load_service_model"}
    assert loaded >= {"s3", "dynamodb"}


def test_a_warm_up_that_fails_leaves_the_forkserver_standing(monkeypatch, caplog):
    """The forkserver dies with an exception its preload raises, and every run launch after it."""
    import boto3

    from orchestration import run_preload

    def unreachable(*args, **kwargs):
        raise OSError("botocore's data folder is gone")

    monkeypatch.setattr(boto3, "client", unreachable)
    run_preload.warm_default_session()
    assert "not preloaded" in caplog.text
