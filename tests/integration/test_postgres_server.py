"""PostgreSQL from Maven Central, started like the other services (infra/local/postgres.py)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from infra.local.postgres import (
    SCRAM_ITERATIONS,
    binaries,
    binaries_home,
    reachable,
    start_postgres,
    unprivileged,
)
from infra.local.stack import StackError, free_port, port_in_use

pytestmark = pytest.mark.integration


@pytest.fixture
def home() -> Iterator[Path]:
    """A folder every user can reach (as root Postgres runs as nobody; pytest's tmp dirs are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="imagelake-test-pg-"))
    folder.chmod(0o755)
    yield folder / "postgres"
    shutil.rmtree(folder, ignore_errors=True)


def test_postgres_speaks_tls_with_a_password_and_keeps_its_data(home, tmp_path):
    pg = start_postgres(home, free_port(), tmp_path / "pg.log")
    try:
        with pg.connect() as con, con.cursor() as cur:
            cur.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            assert cur.fetchone() == (True,)
            cur.execute("select rolpassword from pg_authid where rolname = current_user")
            verifier = cur.fetchone()[0]
            assert verifier.startswith(f"SCRAM-SHA-256${SCRAM_ITERATIONS}:"), verifier[:20]
            cur.execute("create table kept (n int); insert into kept values (42)")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            pg.connect(password="wrong")
        pg.kill()  # a crash, not a clean stop
        assert not port_in_use(pg.port)
        again = start_postgres(home, pg.port, tmp_path / "pg.log")
        assert again.password == pg.password
        with again.connect() as con, con.cursor() as cur:
            cur.execute("select n from kept")
            assert cur.fetchall() == [(42,)]
        again.stop()
        assert again.service.exit_code == 0  # SIGINT: a fast shutdown, not a kill after a timeout
    finally:
        pg.service.stop()


@pytest.mark.skipif(unprivileged() is None, reason="only root runs Postgres as another user")
def test_as_root_a_folder_nobody_can_reach_is_refused_with_what_to_do(tmp_path):
    uid, gid = unprivileged() or (0, 0)
    assert not reachable(tmp_path / "postgres", uid, gid)  # pytest's base temp dir is 0700
    with pytest.raises(StackError, match=r"cannot reach .*IMAGELAKE_DATA_DIR"):
        start_postgres(tmp_path / "postgres", free_port(), tmp_path / "pg.log")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(unprivileged() is None, reason="only root runs Postgres as another user")
def test_as_root_a_checkout_nobody_can_reach_gets_its_binaries_unpacked_where_nobody_can(tmp_path):
    """A checkout in a private folder (root's home, ``mktemp -d``): Postgres still starts, from binaries
    unpacked under the temporary folder; a checkout others can reach keeps them in its .cache."""
    uid, gid = unprivileged() or (0, 0)
    private = tmp_path / "checkout" / ".cache" / "postgres"  # pytest's base temp dir is 0700
    private.parent.mkdir(parents=True)
    home = binaries_home(private)
    assert home != private and reachable(home / "x", uid, gid)
    bin_dir = binaries(into=home)
    assert (bin_dir / "bin" / "initdb").is_file() and reachable(bin_dir / "bin" / "initdb", uid, gid)
    assert binaries(into=home) == bin_dir  # unpacked once
    assert not list(home.glob(".*-*")), "a staging folder was left behind"
    open_folder = Path(tempfile.mkdtemp(prefix="imagelake-test-pg-"))
    try:
        open_folder.chmod(0o755)
        (open_folder / ".cache").mkdir()
        assert binaries_home(open_folder / ".cache" / "postgres") == open_folder / ".cache" / "postgres"
    finally:
        shutil.rmtree(open_folder, ignore_errors=True)


def test_the_connection_benchmark_remakes_the_verifier_and_prints_its_figures(capsys):
    """bench-pg-connect times logins at two iteration counts on one server: each must really be in force."""
    from bench import pg_connect_bench

    assert pg_connect_bench.main(["--connections", "3", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert f"ours     {SCRAM_ITERATIONS:5} iterations" in out
    assert f"baseline {pg_connect_bench.DEFAULT_ITERATIONS:5} iterations" in out
    assert re.search(
        r"^RESULT pg_connect client_ms=[\d.]+ baseline_client_ms=[\d.]+ ratio=[\d.]+ server_ms=[\d.]+$",
        out,
        re.M,
    )
