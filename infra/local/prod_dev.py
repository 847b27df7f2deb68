"""``make dev-prod``: the production-mode stack on this machine; Ctrl-C stops every process it started.

``IMAGELAKE_ENV=prod`` with the stand-ins of ``infra/local/prod_stack.py``:
the lake and the ops bucket on moto's S3 server, DynamoDB Local, Apache Kafka,
Dagster's instance on PostgreSQL, the code locations served by ``dagster api
grpc`` and the API run as the container runs them. moto keeps objects in
memory, so each start begins from an empty stack: the data folder
(``IMAGELAKE_DATA_DIR``, default ``.data-prod``) is cleared of the previous
stack's state first, never ``make dev``'s ``.data``. Ports: the product's
settings as for ``make dev`` (``IMAGELAKE_API_PORT``, ``IMAGELAKE_UI_PORT``,
``IMAGELAKE_KAFKA_BOOTSTRAP``, ``IMAGELAKE_DYNAMODB_ENDPOINT``), S3 on
``IMAGELAKE_S3_ENDPOINT`` (default ``http://127.0.0.1:9000``), PostgreSQL on
``IMAGELAKE_POSTGRES_PORT`` (default 5432) and the code servers on the ports the
Helm values give them.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from imagelake.settings import PROJECT_ROOT, load_settings
from infra.k8s.instance import load_values
from infra.local.dev import PortUse, exit_message, port_problems, stopping_message
from infra.local.prod_stack import STAND_INS, ProdPorts, ProdStack
from infra.local.stack import DataDirInUse, DataDirLock, StackError, hold_interrupts, port_in_use

DEFAULT_DATA_DIR = PROJECT_ROOT / ".data-prod"
DEFAULT_S3_ENDPOINT = "http://127.0.0.1:9000"
DEFAULT_POSTGRES_PORT = 5432


def _port(endpoint: str) -> int:
    return int(endpoint.rstrip("/").rsplit(":", 1)[1])


def planned(env: dict[str, str]) -> tuple[Path, ProdPorts, list[PortUse]]:
    """The data folder, the ports, and each port with the variable that moves it."""
    data_dir = Path(env.get("IMAGELAKE_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
    settings = load_settings({**env, "IMAGELAKE_DATA_DIR": str(data_dir)})
    s3 = env.get("IMAGELAKE_S3_ENDPOINT") or DEFAULT_S3_ENDPOINT
    deployments = load_values()["dagster-user-deployments"]["deployments"]
    ports = ProdPorts(
        kafka=_port(settings.kafka_bootstrap),
        dynamodb=_port(settings.dynamodb_endpoint),
        s3=_port(s3),
        postgres=int(env.get("IMAGELAKE_POSTGRES_PORT") or DEFAULT_POSTGRES_PORT),
        api=settings.api_port,
        ui=settings.ui_port,
        code={d["name"]: int(d["port"]) for d in deployments},
    )
    uses = [
        PortUse("Kafka", ports.kafka, "IMAGELAKE_KAFKA_BOOTSTRAP=127.0.0.1:<port>"),
        PortUse("DynamoDB Local", ports.dynamodb, "IMAGELAKE_DYNAMODB_ENDPOINT=http://127.0.0.1:<port>"),
        PortUse("the S3 server", ports.s3, "IMAGELAKE_S3_ENDPOINT=http://127.0.0.1:<port>"),
        PortUse("PostgreSQL", ports.postgres, "IMAGELAKE_POSTGRES_PORT=<port>"),
        PortUse("the upload API", ports.api, "IMAGELAKE_API_PORT=<port>"),
        PortUse("the Dagster UI", ports.ui, "IMAGELAKE_UI_PORT=<port>"),
        *(
            PortUse(f"the {name} code server", port, "the Helm values' deployment port")
            for name, port in ports.code.items()
        ),
    ]
    return data_dir, ports, uses


def banner(stack: ProdStack) -> str:
    settings = stack.settings()
    stand_ins = "\n".join(f"  {prod:<42} -> {here}" for prod, here in STAND_INS.items())
    code = ", ".join(f"{name} 127.0.0.1:{port}" for name, port in stack.ports.code.items())
    return (
        "\nimagelake (IMAGELAKE_ENV=prod) is up:\n"
        f"  upload API      {stack.api}  (X-API-Key: one of IMAGELAKE_API_KEYS, default dev-key)\n"
        f"  Dagster UI      {stack.ui}  (instance: {stack.dagster_home / 'dagster.yaml'})\n"
        f"  code servers    {code}\n"
        f"  PostgreSQL      127.0.0.1:{stack.ports.postgres}  (database dagster, TLS)\n"
        f"  Kafka           {settings.kafka_bootstrap}  (topic {settings.uploads_topic})\n"
        f"  DynamoDB Local  {settings.dynamodb_endpoint}  (table {settings.catalog_table})\n"
        f"  S3 (moto)       {stack.moto_endpoint}  (lake {settings.lake_url})\n"
        f"  warehouse       {settings.warehouse_path}  (DuckDB over the lake on S3)\n"
        f"  logs            {stack.logs}/\n"
        f"Stand-ins:\n{stand_ins}\n"
        "Ctrl-C stops everything.\n"
    )


def main() -> int:
    data_dir, ports, uses = planned(dict(os.environ))
    stack: ProdStack | None = None
    lock: DataDirLock | None = None
    failure: str | None = None

    def stop(*_: object) -> None:
        hold_interrupts()
        if stack is not None:
            message = stopping_message([n for n, s in reversed(stack.services.items()) if s.running])
            if message:
                print(f"\n{message}", flush=True)
            stack.stop()

    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(0))
    try:
        try:
            lock = DataDirLock(data_dir)
        except DataDirInUse as taken:
            raise StackError(
                f"the data folder {data_dir} is in use by another stack (pid {taken.pid or 'unknown'}): "
                "stop it first, or set IMAGELAKE_DATA_DIR (and the ports) for a second one"
            ) from None
        problems = port_problems(uses, port_in_use)
        if problems:
            raise StackError("\n".join(problems))
        held = (lock.fd,) if lock.fd is not None else ()
        stack = ProdStack(data_dir, ports, keep_fds=held)
        stack.reset()
        print(f"imagelake: starting the production-mode stack in {data_dir} (about a minute)", flush=True)
        stack.start()
        print(banner(stack), flush=True)
        while True:
            for name, code in stack.dead():
                raise StackError(exit_message(name, code, stack.services[name].log_path))
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    except StackError as exc:
        failure = str(exc)
        print(f"imagelake: {failure}", file=sys.stderr, flush=True)
        return 1
    finally:
        stop()
        if failure and stack is not None and stack.services:
            print(f"imagelake: everything is stopped. Why: {failure}", file=sys.stderr, flush=True)
        if lock is not None:
            lock.release()


if __name__ == "__main__":
    raise SystemExit(main())
