"""``make bench-pg-connect``: the CPU one new PostgreSQL connection costs, as Dagster opens them.

dagster-postgres opens a connection per query everywhere but the webserver (the daemon, the code
servers, every run), so the production-mode stack opens about ten a second idle and a hundred per
run (bench-load). Each one is a TLS handshake (the Helm values' ``sslmode=require``) and a SCRAM
login, whose client side derives the key from the password with PBKDF2 at the verifier's iteration
count.

On one server of the production-mode stack (infra/local/postgres.py), the same login is timed
with the role's verifier made at our iteration count (``SCRAM_ITERATIONS``) and at PostgreSQL's
default (the baseline), in alternating rounds: the client's CPU (this process), the server's (the
postmaster and its backends) and the wall time per connection, each opening a connection, asking
``select 1`` and closing it. The last line is ``RESULT pg_connect client_ms=<ours>
baseline_client_ms=<default> ratio=<ours / default> server_ms=<ours>``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from bench.args import positive_int
from infra.local.postgres import SCRAM_ITERATIONS, PostgresServer, start_postgres
from infra.local.stack import free_port

#: PostgreSQL's own ``scram_iterations`` default, the baseline.
DEFAULT_ITERATIONS = 4096


def set_iterations(pg: PostgresServer, iterations: int) -> None:
    """Make the role's verifier again at ``iterations`` (the count is fixed when the password is set)."""
    with pg.connect() as con, con.cursor() as cur:
        cur.execute(f"SET scram_iterations = {int(iterations)}")
        cur.execute(f"ALTER ROLE {pg.user} PASSWORD %s", (pg.password,))
        cur.execute("select rolpassword from pg_authid where rolname = current_user")
        verifier = cur.fetchone()[0]
    if not verifier.startswith(f"SCRAM-SHA-256${iterations}:"):
        raise SystemExit(f"the verifier was not remade at {iterations} iterations: {verifier[:24]}...")


def server_cpu(postmaster: psutil.Process) -> float:
    """The server's CPU so far: the postmaster's and its exited backends' (each connection is one)."""
    t = postmaster.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def round_of(
    pg: PostgresServer, postmaster: psutil.Process, connections: int, sslmode: str
) -> tuple[float, float, float]:
    """(client, server, wall) milliseconds per connection over ``connections`` logins."""
    server, client, wall = server_cpu(postmaster), time.process_time(), time.monotonic()
    for _ in range(connections):
        con = pg.connect(sslmode=sslmode)
        with con.cursor() as cur:
            cur.execute("select 1")
            cur.fetchone()
        con.close()
    per = 1000.0 / connections
    return (
        (time.process_time() - client) * per,
        (server_cpu(postmaster) - server) * per,
        (time.monotonic() - wall) * per,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=positive_int, default=100, help="logins per round")
    parser.add_argument("--rounds", type=positive_int, default=3, help="rounds of each, alternating")
    parser.add_argument(
        "--sslmode",
        choices=("require", "disable"),
        default="require",
        help="require: as the Helm values connect; disable: what TLS costs, by difference",
    )
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="bench-pg-connect-"))
    root.chmod(0o755)  # PostgreSQL runs as nobody when this is root
    pg = start_postgres(root / "postgres", free_port(), root / "postgres.log")
    try:
        postmaster = psutil.Process(pg.service.process.pid)
        figures: dict[int, list[tuple[float, float, float]]] = {SCRAM_ITERATIONS: [], DEFAULT_ITERATIONS: []}
        for _ in range(args.rounds):
            for iterations in (DEFAULT_ITERATIONS, SCRAM_ITERATIONS):
                set_iterations(pg, iterations)
                figures[iterations].append(round_of(pg, postmaster, args.connections, args.sslmode))
        medians = {
            n: [statistics.median(f[i] for f in rounds) for i in range(3)] for n, rounds in figures.items()
        }
        for iterations, (client, server, wall) in medians.items():
            label = "ours" if iterations == SCRAM_ITERATIONS else "baseline"
            print(
                f"{label:8} {iterations:5} iterations, sslmode={args.sslmode}: client {client:.2f} ms, server {server:.2f} ms, "
                f"wall {wall:.2f} ms per connection (median of {args.rounds} rounds of {args.connections})"
            )
        ours, baseline = medians[SCRAM_ITERATIONS], medians[DEFAULT_ITERATIONS]
        print(
            f"RESULT pg_connect client_ms={ours[0]:.2f} baseline_client_ms={baseline[0]:.2f} "
            f"ratio={ours[0] / baseline[0]:.2f} server_ms={ours[1]:.2f}"
        )
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
