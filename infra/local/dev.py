"""``make dev``: the whole product on one machine; Ctrl-C stops every process it started.

Takes its data folder's lock (one stack per ``IMAGELAKE_DATA_DIR``, default
``.data/``; refused, with what to do, while another ``make dev`` holds it), checks
its ports, then starts Kafka (127.0.0.1:9092; its KRaft controller on a
free port) and DynamoDB Local (127.0.0.1:8001) with data under ``.data/``,
creates the upload topic, then runs the upload API (127.0.0.1:8000) and
``dagster dev`` (UI on 127.0.0.1:3000). If any process dies, everything is
stopped and, last, what died and where its log is are printed.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from imagelake.catalog import Catalog
from imagelake.realtime.kafka import KafkaConnection, ensure_topic
from imagelake.settings import PROJECT_ROOT, Settings, get_settings
from infra.local.stack import (
    HERE,
    LOCK_NAME,
    DataDirInUse,
    DataDirLock,
    Service,
    StackError,
    hold_interrupts,
    port_in_use,
    spawn,
    start_dynamodb,
    start_kafka,
    stop_all,
    wait_for_port,
)


def _port(endpoint: str) -> int:
    return int(endpoint.rstrip("/").rsplit(":", 1)[1])


@dataclass(frozen=True)
class PortUse:
    """A port ``make dev`` listens on, and the setting that moves it."""

    what: str
    port: int
    #: How to move it, e.g. ``IMAGELAKE_API_PORT=<port>``.
    setting: str


def planned_ports(settings: Settings) -> list[PortUse]:
    """Every port ``make dev`` will listen on. (Kafka's controller takes a free port when it starts.)"""
    return [
        PortUse("Kafka", _port(settings.kafka_bootstrap), "IMAGELAKE_KAFKA_BOOTSTRAP=127.0.0.1:<port>"),
        PortUse(
            "DynamoDB Local",
            _port(settings.dynamodb_endpoint),
            "IMAGELAKE_DYNAMODB_ENDPOINT=http://127.0.0.1:<port>",
        ),
        PortUse("the upload API", settings.api_port, "IMAGELAKE_API_PORT=<port>"),
        PortUse("the Dagster UI", settings.ui_port, "IMAGELAKE_UI_PORT=<port>"),
    ]


def taken_port_message(use: PortUse) -> str:
    return (
        f"port {use.port} ({use.what}) is in use: stop whatever holds it (another `make dev`?), "
        f"or set {use.setting} to run {use.what} on another port "
        "(a second `make dev` also needs its own IMAGELAKE_DATA_DIR=<folder>)"
    )


def data_dir_in_use_message(settings: Settings, taken: DataDirInUse) -> str:
    """Why ``make dev`` will not start on a data folder another stack holds, and what to do."""
    pid = taken.pid
    if pid is None:
        who = "another `make dev`"
        stop = "stop it first (Ctrl-C in its terminal)"
    elif taken.holder_alive:
        who = f"another `make dev` (pid {pid})"
        stop = f"stop it first (Ctrl-C in its terminal, or kill -INT {pid})"
    else:
        who = f"processes started by a `make dev` that has exited (pid {pid})"
        stop = f"wait for them to stop or stop them (`lsof {settings.data_dir / LOCK_NAME}` lists them)"
    moved = " ".join(use.setting for use in planned_ports(settings))
    return (
        f"the data folder {settings.data_dir} is in use by {who}: nothing was started or changed.\n"
        f"Either {stop}, or run a second stack beside it with its own data folder and ports:\n"
        f"  IMAGELAKE_DATA_DIR=<another folder> {moved} make dev"
    )


def port_problems(uses: Iterable[PortUse], in_use: Callable[[int], bool]) -> list[str]:
    """One message per port that is taken, or wanted by two services."""
    problems: list[str] = []
    seen: dict[int, PortUse] = {}
    for use in uses:
        if use.port in seen:
            first = seen[use.port]
            problems.append(
                f"{first.what} and {use.what} are both set to port {use.port}: "
                f"set {use.setting} to run {use.what} on another port"
            )
            continue
        seen[use.port] = use
        if in_use(use.port):
            problems.append(taken_port_message(use))
    return problems


def check_ports(settings: Settings, in_use: Callable[[int], bool] = port_in_use) -> None:
    """Before starting anything: every port free, or a StackError naming each one taken."""
    problems = port_problems(planned_ports(settings), in_use)
    if problems:
        raise StackError("\n".join(problems))


def banner(settings: Settings) -> str:
    """What ``make dev`` prints once everything is up: where each part listens."""
    key = "dev-key" if "dev-key" in settings.api_keys else "a key from IMAGELAKE_API_KEYS"
    return (
        "\nimagelake is up:\n"
        f"  upload API      http://{settings.api_host}:{settings.api_port}  (X-API-Key: {key})\n"
        f"  Dagster UI      http://127.0.0.1:{settings.ui_port}\n"
        f"  Kafka           {settings.kafka_bootstrap}  (topic {settings.uploads_topic})\n"
        f"  DynamoDB Local  {settings.dynamodb_endpoint}  (table {settings.catalog_table})\n"
        f"  warehouse       {settings.warehouse_path}\n"
        f"  lake            {settings.lake_root_for_sql}\n"
        "Ctrl-C stops everything.\n"
    )


def stopping_message(names: list[str]) -> str | None:
    """The line printed before stopping these services (None: nothing to stop, print nothing)."""
    return f"imagelake: stopping {', '.join(names)}" if names else None


#: Why a process may stop on its own with exit code 0, by service name.
_EXIT_0_CAUSES = {
    "dagster": (
        "`dagster dev` does that when its webserver or daemon dies; "
        "look for 'shut down unexpectedly' in its output above"
    ),
}


def exit_message(name: str, returncode: int, log_path: Path | None) -> str:
    """Why ``make dev`` stopped, when one of its processes stopped on its own."""
    see = f"see {log_path}" if log_path else "see its output above"
    if returncode < 0:
        try:
            how = f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = "was killed by a signal"
        return f"{name} {how} (exit code {returncode}); {see}"
    if returncode == 0:
        cause = _EXIT_0_CAUSES.get(name, see)
        return f"{name} stopped on its own (exit code 0): {cause}"
    return f"{name} exited with code {returncode}; {see}"


def _say(message: str) -> None:
    """A problem, to stderr, each line marked as ``make dev``'s own (not a service's)."""
    print("\n".join(f"imagelake: {line}" for line in message.splitlines()), file=sys.stderr, flush=True)


def _python_service(
    name: str, args: list[str], use: PortUse, env: dict[str, str], keep_fds: tuple[int, ...]
) -> Service:
    """A Python process whose output goes to this terminal."""
    if port_in_use(use.port):  # checked at start-up; taken since?
        raise StackError(taken_port_message(use))
    return spawn(name, args, use.port, env=env, cwd=PROJECT_ROOT, keep_fds=keep_fds)


def main() -> int:
    settings = get_settings()
    data = settings.data_dir
    logs = data / "logs"
    services: list[Service] = []
    lock: DataDirLock | None = None
    stopping = False
    failure: str | None = None

    def shutdown(*_: object) -> bool:
        """Stop everything started; False if nothing was running (or it is being done)."""
        nonlocal stopping
        if stopping:
            return False
        stopping = True
        hold_interrupts()
        running = [s.name for s in reversed(services) if s.running]
        message = stopping_message(running)
        if message is not None:
            print(f"\n{message}", flush=True)
        # Also what a dead service left behind (its process group): the API and Dagster first,
        # then the brokers they talk to.
        stop_all(services[2:])
        stop_all(services[:2])
        return bool(running)

    # Ctrl-C raises KeyboardInterrupt even when started from a shell that ignores SIGINT
    # (a background job); SIGTERM and SIGHUP (terminal closed) stop everything too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: (shutdown(), sys.exit(0)))
    try:
        # First, before anything in the data folder is touched: one stack per data folder (a
        # second Kafka on it rewrote the first one's server.properties, then died on its lock).
        try:
            lock = DataDirLock(data)
        except DataDirInUse as taken:
            raise StackError(data_dir_in_use_message(settings, taken)) from None
        # The services hold the lock too: it outlives this process until they have stopped.
        held = (lock.fd,) if lock.fd is not None else ()
        check_ports(settings)
        *_, api_port, ui_port = planned_ports(settings)
        print("imagelake: starting Kafka on", settings.kafka_bootstrap, flush=True)
        # The controller takes a free port: only the broker talks to it.
        services.append(start_kafka(data / "kafka", _port(settings.kafka_bootstrap), keep_fds=held))
        print("imagelake: starting DynamoDB Local on", settings.dynamodb_endpoint, flush=True)
        services.append(
            start_dynamodb(
                data / "dynamodb", _port(settings.dynamodb_endpoint), logs / "dynamodb.log", keep_fds=held
            )
        )
        ensure_topic(
            KafkaConnection.from_settings(settings), settings.uploads_topic, settings.uploads_topic_partitions
        )
        Catalog.from_settings(settings).ensure_table()

        dagster_home = data / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HERE / "dagster.yaml", dagster_home / "dagster.yaml")
        bin_dir = Path(sys.executable).parent
        env = {
            **os.environ,
            # dagster-dbt looks for `dbt` on PATH when it re-parses the project.
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "DAGSTER_HOME": str(dagster_home),
            **settings.dbt_env(),
        }
        services.append(
            _python_service("upload-api", [sys.executable, "-m", "imagelake.api"], api_port, env, held)
        )
        services.append(
            _python_service(
                "dagster",
                [
                    str(bin_dir / "dagster"),
                    "dev",
                    "-w",
                    str(PROJECT_ROOT / "workspace.yaml"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(settings.ui_port),
                ],
                ui_port,
                env,
                held,
            )
        )
        print("imagelake: waiting for the upload API and the Dagster UI (about 20 s)", flush=True)
        for service in services[-2:]:
            wait_for_port(service, timeout=180)
        print(banner(settings), flush=True)
        while True:
            for service in services:
                if (code := service.exit_code) is not None:
                    raise StackError(exit_message(service.name, code, service.log_path))
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    except StackError as exc:
        failure = str(exc)
        _say(failure)
        return 1
    finally:
        if shutdown() and failure:
            # The others' output while they stopped (librdkafka's connection errors when Kafka
            # died) has scrolled the cause away: say it again, last.
            _say(f"everything is stopped. Why: {failure}")
        if lock is not None:
            lock.release()  # after the services: the data folder is free once they have stopped


if __name__ == "__main__":
    raise SystemExit(main())
