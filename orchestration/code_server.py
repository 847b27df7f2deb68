"""A code server whose run workers are forked from a process that imported the code location once.

``dagster api grpc`` starts each run it launches (the DefaultRunLauncher's runs) as a ``spawn``
process: a new interpreter that imports Dagster and the whole code location before the run's first
step, a fixed cost per run that is most of a batch run's CPU on one machine (docs/benchmarks.md,
bench-load). Dagster's multiprocess executor answers the same cost for step processes with
``start_method: forkserver`` and preloaded modules; this does it for run workers. Everything else
is ``dagster api grpc`` with the same arguments. In Kubernetes each run is a pod of its own
(K8sRunLauncher) and code servers start no runs, so the container keeps ``dagster api grpc``.

What is preloaded is what every run loads: the code location, the classes of the instance it opens
(its storage, compute logs, launcher: ``$DAGSTER_HOME/dagster.yaml``) and ``orchestration.run_preload``
(pandas, boto3's parsed models). A module that fails to import is skipped by the forkserver, and the
run loads it itself, as before.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import yaml
from dagster import __version__ as dagster_version
from dagster._grpc import server as grpc_server


class CodeServerError(RuntimeError):
    """The code server cannot start run workers by fork with this Dagster (or these arguments)."""


def preload_modules(args: Sequence[str]) -> list[str]:
    """The code location's module, which each run worker would import: ``--module-name`` / ``-m``."""
    for flag in ("--module-name", "-m"):
        if flag in args and args.index(flag) + 1 < len(args):
            return [args[args.index(flag) + 1]]
    raise CodeServerError(
        "orchestration.code_server serves a code location given by --module-name (as the Helm values "
        f"give it); got {' '.join(args) or 'no arguments'}"
    )


#: What every run loads beyond its location and instance (module docstring).
RUN_PRELOAD = "orchestration.run_preload"


def _modules_in(config: Any) -> Iterator[str]:
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "module" and isinstance(value, str):
                yield value
            else:
                yield from _modules_in(value)
    elif isinstance(config, list):
        for value in config:
            yield from _modules_in(value)


def instance_modules(dagster_home: str | None) -> list[str]:
    """The modules of the classes the instance in ``dagster_home`` configures (none without one)."""
    path = Path(dagster_home) / "dagster.yaml" if dagster_home else None
    if path is None or not path.is_file():
        return []
    return list(dict.fromkeys(_modules_in(yaml.safe_load(path.read_text()))))


def working_directory(args: Sequence[str]) -> str | None:
    flag = "--working-directory"
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


def forking_context(modules: Sequence[str]) -> BaseContext:
    """A forkserver context whose server imports ``modules`` once, before its first fork."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(modules))
    return context


def start_runs_with(context: BaseContext) -> None:
    """Make Dagster's gRPC API server start run workers from ``context`` instead of ``spawn``.

    The server keeps its start method in a private attribute, set in ``__init__``; the check fails
    loudly at start-up if a Dagster upgrade moves it, rather than silently spawning again.
    """
    server_class = grpc_server.DagsterApiServer
    original = server_class.__init__

    def __init__(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        current = getattr(self, "_mp_ctx", None)
        if current is None or current.get_start_method() != "spawn":
            raise CodeServerError(
                "Dagster's gRPC server no longer keeps its run workers' start method in _mp_ctx "
                f"(dagster {dagster_version}): update orchestration/code_server.py, "
                "or serve the location with `dagster api grpc`"
            )
        self._mp_ctx = context

    server_class.__init__ = __init__  # type: ignore[method-assign]  # no public hook (module docstring)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m orchestration.code_server <dagster api grpc arguments>``."""
    args = list(sys.argv[1:] if argv is None else argv)
    modules = [*preload_modules(args), *instance_modules(os.environ.get("DAGSTER_HOME")), RUN_PRELOAD]
    folder = working_directory(args)
    if folder and folder not in sys.path:
        # The forkserver imports the modules with this process's sys.path; Dagster only adds the
        # working directory while it loads the location.
        sys.path.insert(0, folder)
    start_runs_with(forking_context(modules))
    from dagster._cli import main as dagster_cli

    sys.argv = ["dagster", "api", "grpc", *args]
    dagster_cli()


if __name__ == "__main__":
    main()
