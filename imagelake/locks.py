"""An exclusive lock on a file, shared by threads and processes of one machine.

DuckDB allows one writer per database file, and a second writer fails at once
instead of waiting. A warehouse build takes this lock first, so a second build
(another day's run, a hand-run refresh) waits its turn instead of failing,
and no two builds ever interleave their writes.
"""

from __future__ import annotations

import fcntl
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
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and on_wait is not None:
                    on_wait()
                    told = True
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{path} has been locked by another build for over {wait_s:.0f}s; "
                        "wait for it to finish (see the running warehouse runs) and retry"
                    ) from None
                time.sleep(poll_s)
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
