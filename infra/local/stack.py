"""Start and stop the local stack's Java services: a single-node Kafka broker and DynamoDB Local.

Used by ``make dev`` (fixed ports, data under ``.data/``) and by the tests
(free ports, data in a temp dir). The jars come from Maven Central through
``infra/local/pom.xml`` (``make jars``).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from imagelake.settings import PROJECT_ROOT

JARS_DIR = PROJECT_ROOT / ".cache" / "jars"
HERE = Path(__file__).resolve().parent


class StackError(RuntimeError):
    """A local service could not be started; the message says what to do."""


#: The lock file ``make dev`` holds in its data folder while its stack runs.
LOCK_NAME = "make-dev.lock"


class DataDirInUse(StackError):
    """Another running stack holds the data folder's lock."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        self.data_dir = data_dir
        #: The pid that took the lock, when it wrote one (it may have exited since, see ``holder_alive``).
        self.pid = pid
        super().__init__(
            f"the data folder {data_dir} is in use by another `make dev` (pid {pid or 'unknown'})"
        )

    @property
    def holder_alive(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)


def _pid_alive(pid: int) -> bool:
    return _alive(os.kill, pid)


def _alive(send: Callable[[int, int], None], target: int) -> bool:
    """Whether signal 0 reaches a process (os.kill) or a process group (os.killpg)."""
    try:
        send(target, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/make-dev.lock``: one stack per data folder.

    Taken before anything else in the folder is touched and held for the stack's life. The OS
    drops it when the last process holding it exits, however it exits (a crash leaves no stale
    lock): pass :attr:`fd` to the services (``spawn(..., keep_fds=...)``) and it is held until
    they have stopped too. The file holds the locking pid, only to name it in the message; it is
    never deleted (deleting a lock file would let two processes lock two different files).
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        data_dir.mkdir(parents=True, exist_ok=True)
        # Opened without truncating: while another stack holds the lock, its pid stays readable.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DataDirInUse(data_dir, int(holder) if holder.isdigit() else None) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd: int | None = fd

    def release(self) -> None:
        """Close this process's hold (services given the fd keep the lock until they exit)."""
        if self.fd is not None:
            os.close(self.fd)  # not LOCK_UN: that would unlock it for the services holding it too
            self.fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    port: int
    #: Where its output goes (None: the terminal).
    log_path: Path | None
    #: The log's size when this process started: what it wrote begins there (logs are appended to).
    log_start: int = 0
    #: What :meth:`stop` sends first (PostgreSQL's fast shutdown is SIGINT; its SIGTERM waits for clients).
    stop_signal: signal.Signals = signal.SIGTERM

    @property
    def running(self) -> bool:
        return self.exit_code is None

    @property
    def exit_code(self) -> int | None:
        """None while it runs, then its exit code (negative: the signal that killed it).

        Unlike ``Popen.poll`` this does not reap it: until :meth:`stop` does, its pid cannot be
        reused, so signalling its process group cannot reach another program's.
        """
        if self.process.returncode is not None:
            return self.process.returncode
        try:
            info = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped by someone else
            return self.process.poll()
        if info is None:
            return None
        return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the service and everything it started (its process group), also when the service
        itself has exited and left children running (`dagster dev` leaves its run workers)."""
        if self.process.returncode is not None:
            return  # reaped already: stopped (or killed) before
        group = self.process.pid  # spawn() makes each service the leader of a new process group
        with contextlib.suppress(ProcessLookupError):
            if self.stop_signal == signal.SIGTERM:
                os.killpg(group, signal.SIGTERM)
            else:  # to the leader alone: it stops its own children in order (Postgres's backends)
                os.kill(group, self.stop_signal)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.process.poll()  # reap it once it exits: until then it counts as a member
            if not _group_alive(group):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(5)

    def kill(self) -> None:
        """Kill at once, as a crash would (tests of outages use this)."""
        if self.running:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def _group_alive(group: int) -> bool:
    return _alive(os.killpg, group)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: each is held until all are chosen (``free_port`` called twice can
    answer the same port, and two services of one stack then meet on it)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    binary = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not binary or not Path(binary).exists():
        raise StackError("Java 17+ is required for Kafka and DynamoDB Local: install a JDK or set JAVA_HOME")
    return binary


def jars(name: str) -> Path:
    folder = JARS_DIR / name
    if not (folder / ".done").exists():
        raise StackError(f"the {name} jars are missing from {folder}: run `make jars` (or `make setup`)")
    return folder


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the launcher dies, so nothing is orphaned (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: Ctrl-C and SIGTERM still stop everything through the launcher


def _then_die_with_parent(first: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        first()
        _die_with_parent()

    return both


def spawn(
    name: str,
    cmd: list[str],
    port: int,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    keep_fds: tuple[int, ...] = (),
    preexec: Callable[[], None] | None = None,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> Service:
    """Start a service in its own process group; output to ``log_path`` or this terminal.

    ``keep_fds``: file descriptors the service inherits (a :class:`DataDirLock`'s, so the lock
    is held until the service has exited too). ``preexec`` runs in the child before exec, before
    the parent-death signal is set (PostgreSQL drops root there; a change of user clears that signal).
    """
    log = None
    log_start = 0
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
        log_start = log.tell()
    try:
        process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if preexec is None else _then_die_with_parent(preexec),
            pass_fds=keep_fds,
        )
    finally:
        if log is not None:
            log.close()
    return Service(name, process, port, log_path, log_start, stop_signal)


def hold_interrupts() -> None:
    """From now on Ctrl-C, SIGTERM and SIGHUP only say that the stack is stopping.

    Called as the stack starts to stop: a second Ctrl-C half-way through would end the stopping and
    leave the services not yet stopped running, in process groups of their own, with nobody left to
    stop them. Each service's stop is bounded (:meth:`Service.stop` kills after its timeout).
    """

    def say(*_: object) -> None:
        print("\nimagelake: still stopping the services; this takes a few seconds", flush=True)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, say)


def stop_all(services: list[Service]) -> None:
    """Stop services in parallel (each waits for its own shutdown)."""
    threads = [threading.Thread(target=s.stop, name=f"stop-{s.name}") for s in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


_EXCEPTION_PREFIX = re.compile(r"^[\w.$]+(?:Exception|Error): ")


def bind_failure(log_text: str) -> str | None:
    """The line of a service's log saying it could not listen on a port, if there is one.

    Kafka: ``...KafkaException: Socket server failed to bind to 127.0.0.1:9093: Address already
    in use.`` gives ``Socket server failed to bind to 127.0.0.1:9093: Address already in use.``
    """
    lines = [line.strip() for line in log_text.splitlines()]
    for wanted in ("failed to bind", "address already in use"):
        for line in lines:
            if wanted in line.lower():
                return _EXCEPTION_PREFIX.sub("", line)
    return None


def _startup_log(service: Service) -> str:
    """What the service wrote to its log since it was started (empty when it logs to the terminal)."""
    if service.log_path is None:
        return ""
    try:
        with service.log_path.open("rb") as log:
            log.seek(service.log_start)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def wait_for_port(service: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.running:
            cause = bind_failure(_startup_log(service))
            service.stop()  # whatever it started, if anything
            raise StackError(
                f"{service.name} exited during start-up"
                + (f" ({cause})" if cause else "")
                + f"; see {service.log_path or 'its output above'}"
            )
        if port_in_use(service.port):
            return
        time.sleep(0.2)
    service.stop()
    raise StackError(
        f"{service.name} did not open port {service.port} within {timeout:.0f}s; see {service.log_path}"
    )


def kafka_properties(
    data_dir: Path, port: int, controller_port: int, extra: Mapping[str, str] | None = None
) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data_dir / 'logs'}",
            "num.partitions=3",
            "offsets.topic.replication.factor=1",
            # The Kafka sensor commits its cursor to a consumer group (for the lag): a single broker
            # creating the default 50 partitions of __consumer_offsets kept the group's coordinator
            # away for over a minute on a busy machine; one partition is ready in about a second.
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            *(f"{key}={value}" for key, value in (extra or {}).items()),
            "",
        ]
    )


def start_kafka(
    data_dir: Path,
    port: int,
    controller_port: int | None = None,
    timeout: float = 90.0,
    keep_fds: tuple[int, ...] = (),
    extra_properties: Mapping[str, str] | None = None,
) -> Service:
    """A single-node KRaft broker on 127.0.0.1:``port``; storage formatted on first start.

    Only the broker itself talks to its KRaft controller, so by default that listens on a free
    port chosen now: a new one at every start, which a static quorum (``controller.quorum.voters``)
    allows: its address is read from server.properties, not stored with the data.
    """
    if port_in_use(port):
        raise StackError(f"port {port} is in use: another Kafka (or `make dev`) is running; stop it first")
    if controller_port is not None and port_in_use(controller_port):
        raise StackError(f"port {controller_port} (Kafka's controller) is in use: stop whatever holds it")
    controller_port = controller_port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    props = data_dir / "server.properties"
    props.write_text(kafka_properties(data_dir, port, controller_port, extra_properties))
    classpath = f"{jars('kafka')}/*"
    jvm = [
        java(),
        "-Xms128m",
        "-Xmx512m",
        "-XX:+UseSerialGC",
        f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
        "-cp",
        classpath,
    ]
    if not (data_dir / "logs" / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        formatted = subprocess.run(
            [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # '=' form: a base64 id may start with '-'
                "-c",
                str(props),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
        )
        if formatted.returncode != 0:
            raise StackError(
                f"formatting Kafka storage in {data_dir} failed:\n{formatted.stdout}{formatted.stderr}"
            )
    service = spawn(
        "kafka", [*jvm, "kafka.Kafka", str(props)], port, data_dir / "broker.log", keep_fds=keep_fds
    )
    wait_for_port(service, timeout)
    return service


def start_dynamodb(
    data_dir: Path | None,
    port: int,
    log_path: Path,
    timeout: float = 60.0,
    keep_fds: tuple[int, ...] = (),
) -> Service:
    """DynamoDB Local on 127.0.0.1:``port``; in memory when ``data_dir`` is None."""
    if port_in_use(port):
        raise StackError(
            f"port {port} is in use: another DynamoDB Local (or `make dev`) is running; stop it first"
        )
    folder = jars("dynamodb")
    cmd = [
        java(),
        "-Xms64m",
        "-Xmx512m",
        f"-Dsqlite4java.library.path={folder}",
        "-cp",
        f"{folder}/*",
        "software.amazon.dynamodb.services.local.main.ServerRunner",
        "-port",
        str(port),
        "-disableTelemetry",
    ]
    # One database whatever the client's credentials and region (without -sharedDb, DynamoDB Local
    # keeps one per access key and region), in memory or in a file.
    cmd.append("-sharedDb")
    if data_dir is None:
        cmd.append("-inMemory")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        cmd += ["-dbPath", str(data_dir)]
    # DynamoDB Local writes dynamodb-local-metadata.json into its working directory:
    # keep it beside its log, out of the checkout.
    service = spawn("dynamodb-local", cmd, port, log_path, cwd=log_path.parent, keep_fds=keep_fds)
    wait_for_port(service, timeout)
    return service


def start_moto(port: int, log_path: Path, timeout: float = 30.0) -> Service:
    """moto's server (S3 and the other AWS APIs it mocks) on 127.0.0.1:``port``: the one stand-in for
    AWS, for the tests and the benchmarks. Clients need credentials of any value (``testing``)."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    service = spawn("moto", cmd, port, log_path, env=env)
    wait_for_port(service, timeout)
    return service
