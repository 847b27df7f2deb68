"""`make dev`'s launcher (infra/local/dev.py, infra/local/stack.py), without starting any service."""

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from imagelake.settings import load_settings
from infra.local.dev import (
    PortUse,
    banner,
    check_ports,
    exit_message,
    planned_ports,
    port_problems,
    stopping_message,
)
from infra.local.stack import StackError, bind_failure, free_port, spawn, start_kafka, wait_for_port


@pytest.fixture
def settings(tmp_path):
    return load_settings({"IMAGELAKE_DATA_DIR": str(tmp_path)})


def test_the_banner_says_where_kafka_and_dynamodb_listen(settings):
    text = banner(settings)
    assert "imagelake is up" in text
    assert "Kafka           127.0.0.1:9092  (topic image-uploads)" in text
    assert "DynamoDB Local  http://127.0.0.1:8001  (table imagelake-images)" in text
    assert "http://127.0.0.1:8000  (X-API-Key: dev-key)" in text
    assert "http://127.0.0.1:3000" in text
    assert str(settings.warehouse_path) in text and settings.lake_root_for_sql in text


def test_the_banner_follows_the_settings(tmp_path):
    moved = load_settings(
        {
            "IMAGELAKE_DATA_DIR": str(tmp_path),
            "IMAGELAKE_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
            "IMAGELAKE_DYNAMODB_ENDPOINT": "http://127.0.0.1:18001",
            "IMAGELAKE_API_KEYS": "secret:me",
        }
    )
    text = banner(moved)
    assert "127.0.0.1:19092" in text and "http://127.0.0.1:18001" in text
    assert "dev-key" not in text and "secret" not in text  # a real key is not printed


def test_every_port_is_checked_with_the_setting_that_moves_it(settings):
    uses = {use.port: use.setting for use in planned_ports(settings)}
    assert uses == {
        9092: "IMAGELAKE_KAFKA_BOOTSTRAP=127.0.0.1:<port>",
        8001: "IMAGELAKE_DYNAMODB_ENDPOINT=http://127.0.0.1:<port>",
        8000: "IMAGELAKE_API_PORT=<port>",
        3000: "IMAGELAKE_UI_PORT=<port>",
    }


def test_a_taken_port_names_the_setting_that_moves_it(settings):
    with pytest.raises(StackError) as caught:
        check_ports(settings, in_use=lambda port: port in (9092, 3000))
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("port 9092 (Kafka) is in use: stop whatever holds it")
    assert "set IMAGELAKE_KAFKA_BOOTSTRAP=127.0.0.1:<port> to run Kafka on another port" in lines[0]
    assert "port 3000 (the Dagster UI)" in lines[1] and "IMAGELAKE_UI_PORT=<port>" in lines[1]
    check_ports(settings, in_use=lambda port: False)  # all free: no error


def test_two_services_on_one_port_is_a_problem_before_starting_either():
    uses = [
        PortUse("the upload API", 8000, "IMAGELAKE_API_PORT=<port>"),
        PortUse("the Dagster UI", 8000, "X"),
    ]
    assert port_problems(uses, in_use=lambda port: False) == [
        "the upload API and the Dagster UI are both set to port 8000: "
        "set X to run the Dagster UI on another port"
    ]


def test_nothing_to_stop_prints_nothing():
    assert stopping_message([]) is None
    assert stopping_message(["dagster", "kafka"]) == "imagelake: stopping dagster, kafka"


def test_a_killed_process_is_named_with_its_signal_and_log():
    log = Path("/data/kafka/broker.log")
    assert exit_message("kafka", -signal.SIGKILL, log) == (
        "kafka was killed by SIGKILL (exit code -9); see /data/kafka/broker.log"
    )
    assert exit_message("upload-api", 1, None) == "upload-api exited with code 1; see its output above"


def test_dagster_dev_exiting_0_is_not_called_a_clean_exit():
    message = exit_message("dagster", 0, None)
    assert message.startswith("dagster stopped on its own (exit code 0)")
    assert "webserver or daemon dies" in message and "shut down unexpectedly" in message
    assert exit_message("kafka", 0, Path("b.log")) == "kafka stopped on its own (exit code 0): see b.log"


def test_a_bind_failure_is_found_in_kafkas_log():
    log = (
        "[2026-11-24 19:14:55,204] ERROR Unable to start acceptor for CONTROLLER (kafka.network.DataPlaneAcceptor)\n"
        "org.apache.kafka.common.KafkaException: Socket server failed to bind to 127.0.0.1:9093: "
        "Address already in use.\n"
        "Caused by: java.net.BindException: Address already in use\n"
    )
    assert bind_failure(log) == "Socket server failed to bind to 127.0.0.1:9093: Address already in use."
    assert bind_failure("java.net.BindException: Address already in use\n") == "Address already in use"
    assert bind_failure("[INFO] started\n") is None


def test_a_service_that_dies_at_start_up_says_why(tmp_path):
    log = tmp_path / "svc.log"
    log.write_text("an earlier run: Socket server failed to bind to 127.0.0.1:1\n")
    script = "print('Socket server failed to bind to 127.0.0.1:9093: Address already in use.'); raise SystemExit(1)"
    service = spawn("svc", [sys.executable, "-c", script], free_port(), log)
    with pytest.raises(StackError) as caught:
        wait_for_port(service, timeout=30)
    assert str(caught.value) == (
        "svc exited during start-up (Socket server failed to bind to 127.0.0.1:9093: Address already in use.)"
        f"; see {log}"
    )
    # Only this run's lines count: an old failure in the same log is not blamed.
    quiet = spawn("svc", [sys.executable, "-c", "raise SystemExit(1)"], free_port(), log)
    with pytest.raises(StackError, match=r"^svc exited during start-up; see "):
        wait_for_port(quiet, timeout=30)


def test_a_taken_controller_port_is_refused_before_starting_kafka(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {taken} \(Kafka's controller\) is in use"):
            start_kafka(tmp_path, free_port(), controller_port=taken)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it has stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_stopping_a_service_that_exited_stops_what_it_left_running(tmp_path):
    # As `dagster dev` does when its daemon dies: it exits 0, its run workers carry on.
    log = tmp_path / "svc.log"
    service = spawn("svc", ["sh", "-c", "sleep 300 & echo $!; exit 0"], free_port(), log)
    deadline = time.monotonic() + 30
    while service.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.exit_code == 0
    assert service.process.returncode is None  # not reaped: its group id cannot go to another program
    orphan = int(log.read_text().split()[0])
    assert _alive(orphan)
    service.stop(timeout=10)
    assert not _alive(orphan)
    assert service.process.returncode == 0


def test_a_killed_service_reports_the_signal_and_stop_after_kill_does_nothing(tmp_path):
    service = spawn("svc", [sys.executable, "-c", "import time; time.sleep(300)"], free_port())
    os.kill(service.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while service.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.exit_code == -signal.SIGKILL
    service.stop()
    assert service.process.returncode == -signal.SIGKILL
    service.stop()  # reaped: its pid may be another program's now, so nothing is signalled
