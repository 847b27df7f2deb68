"""An exclusive lock on a file, shared by threads and processes of one machine.

DuckDB allows one writer per database file, and a second writer fails at once
instead of waiting. A warehouse build takes this lock first, so a second build
(another day's run, a hand-run refresh) waits its turn instead of failing,
and no two builds ever interleave their writes. It then waits for DuckDB's
own lock on the database file: any process that has the file open, even
read-only (an analyst's duckdb session), keeps the writer out.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class LockTimeout(TimeoutError):
    """The lock stayed taken for longer than the caller would wait."""


@contextmanager
def exclusive(
    path: Path, wait_s: float, on_wait: Callable[[], None] | None = None, poll_s: float = 0.2
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    ``on_wait`` is called once if the lock is taken when we ask, so the caller
    can say why it is waiting. Each call opens the file anew, so two threads of
    one process exclude each other just as two processes do.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:

        def acquired() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        poll_until(
            acquired,
            wait_s,
            on_wait,
            poll_s,
            f"{path} has been locked by another build for over {wait_s:.0f}s; "
            "wait for it to finish (see the running warehouse runs) and retry",
        )
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_locked(path: Path) -> bool:
    """Whether someone holds the lock right now (for tests and diagnostics)."""
    if not path.exists():
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


#: Exit code of the probe when another process holds a POSIX lock on the file (DuckDB's).
_IN_USE = 2

#: Run in a child process. Any other failure (the file unreadable, say) exits 1 with its traceback.
_PROBE = f"""
import errno, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError as exc:
    if exc.errno not in (errno.EACCES, errno.EAGAIN):
        raise
    sys.exit({_IN_USE})
"""


def in_use(path: Path) -> bool:
    """Whether a process holds DuckDB's lock on ``path`` (reader or writer).

    Asked from a child process (10 ms): POSIX locks never conflict within one
    process, and closing a descriptor of the file here would silently drop
    every lock this process holds on it.
    """
    if not path.exists():
        return False
    probe = subprocess.run([sys.executable, "-S", "-c", _PROBE, str(path)], capture_output=True, timeout=30)
    if probe.returncode not in (0, _IN_USE):
        reason = probe.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise OSError(f"could not check whether another process has {path} open: {' '.join(reason)}")
    return probe.returncode == _IN_USE


def wait_until_unused(
    path: Path, wait_s: float, on_wait: Callable[[], None] | None = None, poll_s: float = 1.0
) -> None:
    """Return once no process has ``path`` open under DuckDB's lock; ``on_wait`` is called once if one has."""
    poll_until(
        lambda: not in_use(path),
        wait_s,
        on_wait,
        poll_s,
        f"{path} has been open in another process for over {wait_s:.0f}s, and DuckDB lets no one "
        "write to a file another process has open, even read-only. Close that session "
        f"(`lsof {path}` names it); the next refresh then builds these days",
    )


def poll_until(
    done: Callable[[], bool], wait_s: float, on_wait: Callable[[], None] | None, poll_s: float, timeout: str
) -> None:
    """Ask ``done`` every ``poll_s`` until it says yes; ``on_wait`` once if the first answer is no,
    :class:`LockTimeout` with the ``timeout`` message after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    told = False
    while not done():
        if not told and on_wait is not None:
            on_wait()
            told = True
        if time.monotonic() >= deadline:
            raise LockTimeout(timeout)
        time.sleep(poll_s)
