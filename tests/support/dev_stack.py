"""`make dev` for end-to-end tests: the whole local stack on free ports in a temp dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from imagelake.settings import PROJECT_ROOT
from infra.local.stack import free_port

SERVICES = ("kafka", "dynamodb", "api", "ui")


@dataclass
class DevStack:
    """One `python -m infra.local.dev` process, its ports, data folder and log."""

    ports: dict[str, int]
    data_dir: Path
    log: Path
    proc: subprocess.Popen | None = None

    @classmethod
    def on_free_ports(cls, tmp_path: Path) -> DevStack:
        return cls({name: free_port() for name in SERVICES}, tmp_path / "data", tmp_path / "make-dev.log")

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ports['ui']}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "IMAGELAKE_ENV": "local",
            "IMAGELAKE_DATA_DIR": str(self.data_dir),
            "IMAGELAKE_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.ports['kafka']}",
            "IMAGELAKE_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{self.ports['dynamodb']}",
            "IMAGELAKE_API_PORT": str(self.ports["api"]),
            "IMAGELAKE_UI_PORT": str(self.ports["ui"]),
            "IMAGELAKE_SENSOR_INTERVAL_S": "3",
        }

    def start(self) -> None:
        """Start the stack (appending to the log) and wait until the API answers."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infra.local.dev"],
                cwd=PROJECT_ROOT,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = self.log.read_text().count("imagelake is up")
        self.wait_for(
            lambda: self.log.read_text().count("imagelake is up") > started, 120, "the stack to start"
        )
        self.wait_for(self._api_ready, 60, "the upload API")

    def stop(self) -> None:
        """Ctrl-C, as a user stops it, and again once it says it is stopping, as an impatient user
        does (the second must not cut the stopping short); killed if not stopped within a minute."""
        if self.proc is None or self.proc.poll() is not None:
            return
        stopping = self.log.read_text().count("imagelake: stopping")
        self.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        while self.proc.poll() is None and time.monotonic() < deadline:
            if self.log.read_text().count("imagelake: stopping") > stopping:
                self.proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.05)
        try:
            self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"make dev exited early ({self.proc.returncode}) while waiting for {what}:\n"
                    f"{self.log.read_text()[-4000:]}"
                )
            if predicate():
                return
            time.sleep(1)
        raise AssertionError(
            f"timed out after {timeout:.0f}s waiting for {what}:\n{self.log.read_text()[-4000:]}"
        )

    def _api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.api}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def runs(self, job: str) -> list[dict]:
        """The job's runs as Dagster's GraphQL API lists them: id, status and tags."""
        query = (
            "query($job: String!) { runsOrError(filter: {pipelineName: $job}) "
            "{ ... on Runs { results { runId status tags { key value } } } } }"
        )
        response = httpx.post(
            f"{self.ui}/graphql", json={"query": query, "variables": {"job": job}}, timeout=10
        )
        response.raise_for_status()
        return response.json()["data"]["runsOrError"]["results"]
