"""PostgreSQL for the production-mode stack: Dagster's run, event-log and schedule storage.

The binaries come from Maven Central like Kafka's jars: ``make jars`` copies
``io.zonky.test.postgres:embedded-postgres-binaries-<platform>`` (a relocatable
PostgreSQL build packed as a ``.txz`` inside the jar) into ``.cache/jars/postgres/``,
and it is unpacked once into ``.cache/postgres/<jar>/`` (or, as root with a checkout
``nobody`` cannot reach, under the system's temporary folder). The server runs like the
other services: its own process group, its output in a log, stopped by
``Service.stop`` (with SIGINT, Postgres's fast shutdown: SIGTERM would wait for
every client to disconnect, and Dagster's pools never do).

Two things production imposes on it: the Helm values connect with
``sslmode=require``, so the server speaks TLS (a self-signed certificate made
when the cluster is created); and the password is a secret the instance reads
from ``DAGSTER_PG_PASSWORD``, made at creation and kept beside the cluster.
Postgres refuses to run as root: as root its processes run as ``nobody``, so the
cluster's folder must be reachable by that user (a folder under ``/tmp`` is).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import lzma
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imagelake.settings import PROJECT_ROOT
from infra.local.stack import JARS_DIR, Service, StackError, port_in_use, spawn

#: Where the unpacked binaries live (one folder per jar, so a version change unpacks anew).
BINARIES_DIR = PROJECT_ROOT / ".cache" / "postgres"
#: The user Postgres runs as when this process is root (Postgres refuses root).
UNPRIVILEGED_USER = "nobody"
#: PBKDF2 rounds of the role's password verifier. The password is a random 192-bit secret, so key
#: stretching adds no strength; and Dagster opens a connection per query outside its webserver, each
#: paying the rounds on the client (docs/benchmarks.md, "What a run and an idle stack cost").
SCRAM_ITERATIONS = 1
#: Said in the log once the server accepts connections (the port opens earlier, during recovery).
READY_LINE = "database system is ready to accept connections"


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: the service, where it listens and who may log in."""

    service: Service
    host: str
    port: int
    user: str
    password: str
    database: str
    cluster: Path

    def connect(self, password: str | None = None, sslmode: str = "require"):
        """A new psycopg2 connection as Dagster's clients make one: TLS (the Helm values'
        ``sslmode=require``) and the role's password, unless another is given."""
        import psycopg2  # type: ignore[import-untyped]  # only the stack's own checks and benchmarks connect from here

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=password or self.password,
            dbname=self.database,
            sslmode=sslmode,
            connect_timeout=10,
        )

    def stop(self) -> None:
        self.service.stop()

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; its backends notice and exit on their own."""
        self.service.kill()


def jar() -> Path:
    """The binaries jar ``make jars`` copied, or a StackError saying how to get it."""
    found = sorted((JARS_DIR / "postgres").glob("embedded-postgres-binaries-*.jar"))
    if not (JARS_DIR / "postgres" / ".done").exists() or len(found) != 1:
        raise StackError(
            f"the PostgreSQL binaries are missing from {JARS_DIR / 'postgres'}: run `make jars` (or `make setup`)"
        )
    return found[0]


def binaries(source: Path | None = None, into: Path | None = None) -> Path:
    """The folder holding ``bin/postgres``, unpacked from the jar on first use.

    Unpacked beside its final name and renamed into place, so that two stacks starting at once
    (the test suite runs two processes) never run a half-unpacked build.
    """
    source = source or jar()
    target = (into or binaries_home()) / source.stem
    if (target / ".done").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{source.stem}-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would keep nobody out
        with zipfile.ZipFile(source) as archive:
            packed = [n for n in archive.namelist() if n.endswith(".txz")]
            if len(packed) != 1:
                raise StackError(f"{source} holds no single .txz of PostgreSQL binaries: {packed}")
            with archive.open(packed[0]) as raw, lzma.open(raw) as xz, tarfile.open(fileobj=xz) as tar:
                tar.extractall(staging, filter="tar")
        (staging / ".done").touch()
        if target.exists() and not (target / ".done").exists():  # left unfinished by an older unpacking
            shutil.rmtree(target)
        with contextlib.suppress(OSError):  # another stack got there first: use its copy
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not (target / ".done").exists():
        raise StackError(f"could not unpack the PostgreSQL binaries into {target}: remove it and start again")
    return target


def binaries_home(preferred: Path = BINARIES_DIR) -> Path:
    """Where the binaries are unpacked: ``preferred``, unless Postgres must run as ``nobody`` and cannot
    reach it (a checkout in a private folder, such as root's home or a ``mktemp -d`` folder), then a
    folder of this user's under the system's temporary folder."""
    ids = unprivileged()
    if ids is None or reachable(preferred, *ids):
        return preferred
    shared = Path(tempfile.gettempdir()) / f"imagelake-postgres-{os.geteuid()}"
    shared.mkdir(mode=0o755, exist_ok=True)
    st = shared.lstat()
    if (
        not stat.S_ISDIR(st.st_mode)
        or st.st_uid != os.geteuid()
        or st.st_mode & 0o022
        or not reachable(shared / "x", *ids)
    ):
        raise StackError(
            f"PostgreSQL runs as {UNPRIVILEGED_USER} here (it refuses root), and {UNPRIVILEGED_USER} cannot "
            f"reach this checkout ({PROJECT_ROOT}) nor use {shared} (it must be this user's own folder, "
            "writable by no one else): make the checkout's folders traversable (chmod o+x) or clone it elsewhere"
        )
    return shared


def unprivileged() -> tuple[int, int] | None:
    """(uid, gid) to run Postgres as when this process is root; None otherwise."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return entry.pw_uid, entry.pw_gid


def reachable(path: Path, uid: int, gid: int) -> bool:
    """Whether ``uid`` may traverse every folder above ``path`` (by the mode bits)."""
    for folder in path.resolve().parents:
        st = folder.stat()
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid == gid else stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _as(ids: tuple[int, int] | None) -> Callable[[], None] | None:
    if ids is None:
        return None
    uid, gid = ids

    def drop() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return drop


def redacted(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` masked, for an error message or a log."""
    return text.replace(secret, "<password>") if secret else text


def _certificate(cluster: Path) -> None:
    """A self-signed certificate for 127.0.0.1, so clients can require TLS as production does."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    (cluster / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = cluster / "server.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)  # Postgres refuses a key others can read


def _chown_tree(root: Path, ids: tuple[int, int] | None) -> None:
    if ids is None:
        return
    for path in [root, *root.rglob("*")]:
        os.chown(path, *ids, follow_symlinks=False)


def create_cluster(home: Path, user: str, database: str, bin_dir: Path) -> str:
    """A new cluster under ``home/cluster`` owned by ``user`` with ``database``; returns the password."""
    ids = unprivileged()
    if ids is not None and not reachable(home, *ids):
        raise StackError(
            f"PostgreSQL runs as {UNPRIVILEGED_USER} here (it refuses root), and {UNPRIVILEGED_USER} cannot "
            f"reach {home}: put the stack's data folder where every user can traverse the path, "
            "e.g. IMAGELAKE_DATA_DIR=/tmp/imagelake-prod make dev-prod"
        )
    cluster = home / "cluster"
    shutil.rmtree(cluster, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    pwfile = home / "initdb-password"
    pwfile.write_text(password + "\n")
    _chown_tree(home, ids)
    try:
        done = subprocess.run(
            [
                str(bin_dir / "bin" / "initdb"),
                "-D",
                str(cluster),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            preexec_fn=_as(ids),
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise StackError(f"initdb failed in {cluster}:\n{done.stdout}{done.stderr}")
    created = subprocess.run(
        [str(bin_dir / "bin" / "postgres"), "--single", "-D", str(cluster), "postgres"],
        input=(
            f"CREATE DATABASE {database};\n"
            f"SET scram_iterations = {SCRAM_ITERATIONS};\n"
            f"ALTER ROLE {user} PASSWORD '{password}';\n"
        ),
        capture_output=True,
        text=True,
        preexec_fn=_as(ids),
    )
    if created.returncode != 0 or "ERROR" in created.stdout + created.stderr:
        # Single-user mode echoes a failing statement, and one of them holds the new password.
        output = redacted(created.stdout + created.stderr, password)
        raise StackError(f"creating database {database} failed:\n{output}")
    _certificate(cluster)
    _chown_tree(cluster, ids)
    (home / "password").write_text(password)
    (home / "password").chmod(0o600)
    return password


def start_postgres(
    home: Path,
    port: int,
    log_path: Path,
    *,
    user: str = "dagster",
    database: str = "dagster",
    timeout: float = 60.0,
    keep_fds: tuple[int, ...] = (),
) -> PostgresServer:
    """PostgreSQL on 127.0.0.1:``port`` (TLS, password auth), its cluster under ``home``.

    The cluster is created on first start and kept: a restart on the same ``home`` finds every
    run and event as they were, as an RDS instance would after a reboot.
    """
    if port_in_use(port):
        raise StackError(f"port {port} is in use: another PostgreSQL (or stack) is running; stop it first")
    bin_dir = binaries()
    if not (home / "cluster" / "PG_VERSION").exists() or not (home / "password").exists():
        create_cluster(home, user, database, bin_dir)
    password = (home / "password").read_text().strip()
    cluster = home / "cluster"
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": "",  # TCP only, as clients reach RDS
        "ssl": "on",
        "ssl_cert_file": str(cluster / "server.crt"),
        "ssl_key_file": str(cluster / "server.key"),
        # Dagster's webserver, daemon, code servers and every run worker keep pools of connections.
        "max_connections": "200",
    }
    command = [str(bin_dir / "bin" / "postgres"), "-D", str(cluster)]
    for key, value in settings.items():
        command += ["-c", f"{key}={value}"]
    service = spawn(
        "postgres",
        command,
        port,
        log_path,
        keep_fds=keep_fds,
        preexec=_as(unprivileged()),
        stop_signal=signal.SIGINT,
    )
    wait_until_ready(service, timeout)
    return PostgresServer(service, "127.0.0.1", port, user, password, database, cluster)


def wait_until_ready(service: Service, timeout: float) -> None:
    """Until the log says the server accepts connections (the port opens before recovery ends)."""
    assert service.log_path is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.running:
            raise StackError(
                f"postgres exited during start-up (code {service.exit_code}); see {service.log_path}"
            )
        with contextlib.suppress(OSError), service.log_path.open("rb") as log:
            log.seek(service.log_start)
            if READY_LINE.encode() in log.read():
                return
        time.sleep(0.1)
    service.stop()
    raise StackError(f"postgres did not accept connections within {timeout:.0f}s; see {service.log_path}")
