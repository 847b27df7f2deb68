"""``make dev``: the whole product on one machine; Ctrl-C stops every process it started.

Starts Kafka (127.0.0.1:9092) and DynamoDB Local (127.0.0.1:8001) with data
under ``.data/``, creates the upload topic, then runs the upload API
(127.0.0.1:8000) and ``dagster dev`` (UI on 127.0.0.1:3000). If any process
dies, everything is stopped and its log is named.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

from imagelake.catalog import Catalog
from imagelake.kafka import KafkaConnection, ensure_topic
from imagelake.settings import PROJECT_ROOT, get_settings
from infra.local.stack import (
    HERE,
    Service,
    StackError,
    port_in_use,
    spawn,
    start_dynamodb,
    start_kafka,
    stop_all,
    wait_for_port,
)


def _port(endpoint: str) -> int:
    return int(endpoint.rstrip("/").rsplit(":", 1)[1])


def _python_service(name: str, args: list[str], port: int, env: dict[str, str]) -> Service:
    """A Python process whose output goes to this terminal."""
    if port_in_use(port):
        raise StackError(f"port {port} is in use: stop whatever holds it (another `make dev`?) and retry")
    return spawn(name, args, port, env=env, cwd=PROJECT_ROOT)


def main() -> int:
    settings = get_settings()
    data = settings.data_dir
    logs = data / "logs"
    services: list[Service] = []
    stopping = False

    def shutdown(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nimagelake: stopping", ", ".join(s.name for s in reversed(services)), flush=True)
        stop_all(services[2:])  # the API and Dagster first, then the brokers they talk to
        stop_all(services[:2])

    # Ctrl-C raises KeyboardInterrupt even when started from a shell that ignores SIGINT
    # (a background job); SIGTERM and SIGHUP (terminal closed) stop everything too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: (shutdown(), sys.exit(0)))
    try:
        print("imagelake: starting Kafka on", settings.kafka_bootstrap, flush=True)
        kafka_port = _port(settings.kafka_bootstrap)
        services.append(start_kafka(data / "kafka", kafka_port, controller_port=kafka_port + 1))
        print("imagelake: starting DynamoDB Local on", settings.dynamodb_endpoint, flush=True)
        services.append(
            start_dynamodb(data / "dynamodb", _port(settings.dynamodb_endpoint), logs / "dynamodb.log")
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
            _python_service("upload-api", [sys.executable, "-m", "imagelake.api"], settings.api_port, env)
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
                settings.ui_port,
                env,
            )
        )
        print("imagelake: waiting for the upload API and the Dagster UI (about 20 s)", flush=True)
        for service in services[-2:]:
            wait_for_port(service, timeout=180)
        print(
            f"\nimagelake is up:\n"
            f"  upload API   http://{settings.api_host}:{settings.api_port}  (X-API-Key: dev-key)\n"
            f"  Dagster UI   http://127.0.0.1:{settings.ui_port}\n"
            f"  warehouse    {settings.warehouse_path}\n"
            f"  lake         {settings.lake_root_for_sql}\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        while True:
            for service in services:
                if not service.running:
                    raise StackError(
                        f"{service.name} exited with code {service.process.returncode}; "
                        f"see {service.log_path or 'its output above'}"
                    )
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    except StackError as exc:
        print(f"imagelake: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
