"""`make dev`'s launcher (infra/local/dev.py, infra/local/stack.py), without starting any service."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagelake.settings import PROJECT_ROOT, load_settings
from infra.local.dev import (
    PortUse,
    banner,
    check_ports,
    data_dir_in_use_message,
    exit_message,
    planned_ports,
    port_problems,
    stopping_message,
)
from infra.local.stack import (
    DataDirInUse,
    DataDirLock,
    StackError,
    bind_failure,
    free_port,
    spawn,
    start_kafka,
    wait_for_port,
)


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
    assert "a second `make dev` also needs its own IMAGELAKE_DATA_DIR=<folder>" in lines[0]
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


# What a running `make dev` does to its data folder, written without infra.local.stack: an
# exclusive flock on make-dev.lock, its pid inside, held until the process exits.
_HOLD_THE_DATA_DIR = """
import fcntl, os, sys, time
fd = os.open(os.path.join(sys.argv[1], "make-dev.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
time.sleep(300)
"""


def _make_dev(data: Path) -> subprocess.CompletedProcess:
    """`python -m infra.local.dev` on free ports with ``data`` as its data folder.

    No Java (JAVA_HOME points nowhere): a launcher that gets as far as starting Kafka stops
    there at once, after writing Kafka's server.properties as it always does.
    """
    env = {
        **os.environ,
        "IMAGELAKE_ENV": "local",
        "IMAGELAKE_DATA_DIR": str(data),
        "IMAGELAKE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "IMAGELAKE_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "IMAGELAKE_API_PORT": str(free_port()),
        "IMAGELAKE_UI_PORT": str(free_port()),
        "JAVA_HOME": str(data.parent / "no-java"),
    }
    return subprocess.run(
        [sys.executable, "-m", "infra.local.dev"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_data_folder_in_use_is_refused_before_anything_in_it_is_touched(tmp_path):
    data = tmp_path / "data"
    (data / "kafka").mkdir(parents=True)
    running_config = "listeners=PLAINTEXT://127.0.0.1:9092\n"  # the running broker's
    (data / "kafka" / "server.properties").write_text(running_config)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_THE_DATA_DIR, str(data)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        second = _make_dev(data)
        assert second.returncode == 1, second.stderr
        assert (data / "kafka" / "server.properties").read_text() == running_config
        assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == [
            "kafka",
            "kafka/server.properties",
            "make-dev.lock",
        ]
        said = second.stderr
        assert f"imagelake: the data folder {data} is in use by another `make dev` (pid {holder.pid})" in said
        assert f"kill -INT {holder.pid}" in said
        assert "IMAGELAKE_DATA_DIR=<another folder> IMAGELAKE_KAFKA_BOOTSTRAP=127.0.0.1:<port>" in said
        assert "starting Kafka" not in second.stdout
    finally:
        holder.kill()
        holder.wait(10)
    # The lock died with its holder (no stale file to clean up): this launcher gets past it
    # and only stops at the missing Java, having started on the data folder.
    third = _make_dev(data)
    assert third.returncode == 1
    assert "is in use" not in third.stderr and "Java 17+ is required" in third.stderr, third.stderr
    assert (data / "kafka" / "server.properties").read_text() != running_config
    assert (data / "make-dev.lock").read_text().strip().isdigit()


def test_the_services_hold_the_data_folder_until_they_exit(tmp_path):
    lock = DataDirLock(tmp_path)
    service = spawn(
        "svc", [sys.executable, "-c", "import time; time.sleep(300)"], free_port(), keep_fds=(lock.fd,)
    )
    try:
        lock.release()  # the launcher is gone; a service it started still runs on the folder
        with pytest.raises(DataDirInUse) as caught:
            DataDirLock(tmp_path)
        assert caught.value.pid == os.getpid() and caught.value.data_dir == tmp_path
    finally:
        service.kill()
    with DataDirLock(tmp_path) as again:  # free once the last holder has exited
        assert (tmp_path / "make-dev.lock").read_text() == f"{os.getpid()}\n"
        assert again.fd is not None


def test_the_data_folder_message_says_who_holds_it_and_what_to_do(tmp_path):
    settings = load_settings({"IMAGELAKE_DATA_DIR": str(tmp_path)})
    alive = data_dir_in_use_message(settings, DataDirInUse(tmp_path, os.getpid()))
    lines = alive.splitlines()
    assert lines[0] == (
        f"the data folder {tmp_path} is in use by another `make dev` (pid {os.getpid()}): "
        "nothing was started or changed."
    )
    assert lines[1] == (
        f"Either stop it first (Ctrl-C in its terminal, or kill -INT {os.getpid()}), "
        "or run a second stack beside it with its own data folder and ports:"
    )
    assert lines[2] == (
        "  IMAGELAKE_DATA_DIR=<another folder> IMAGELAKE_KAFKA_BOOTSTRAP=127.0.0.1:<port> "
        "IMAGELAKE_DYNAMODB_ENDPOINT=http://127.0.0.1:<port> IMAGELAKE_API_PORT=<port> "
        "IMAGELAKE_UI_PORT=<port> make dev"
    )
    unknown = data_dir_in_use_message(settings, DataDirInUse(tmp_path, None))
    assert "in use by another `make dev`: " in unknown and "kill" not in unknown
    launcher = subprocess.Popen([sys.executable, "-c", "pass"])
    launcher.wait(30)  # exited and reaped: its services may still hold the lock
    gone = data_dir_in_use_message(settings, DataDirInUse(tmp_path, launcher.pid))
    assert "that has exited" in gone and f"lsof {tmp_path / 'make-dev.lock'}" in gone
