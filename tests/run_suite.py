"""The whole suite as ``make test`` runs it: the end-to-end tests beside the rest.

The end-to-end tests spend their time waiting on whole stacks (processes starting, sensor ticks,
runs launching) rather than computing, so on a small machine they run in a pytest process of
their own while the other layers run in this one; each starts its services on free ports in temp
dirs, so the two share nothing. The end-to-end report is printed after the rest's, whole, and the
exit status fails if either failed. Arguments are passed to both (``-k``, ``-x``, ``--durations``);
to run one layer or one file, ``make test-e2e`` and the like call pytest directly.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

E2E = "tests/e2e"


def main(args: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest"]
    with tempfile.TemporaryFile(mode="w+", prefix="imagelake-e2e-") as log:
        print(f"{E2E} runs beside the rest; its report follows", flush=True)
        e2e = subprocess.Popen([*pytest, E2E, *args], stdout=log, stderr=subprocess.STDOUT)
        try:
            rest = subprocess.call([*pytest, "--ignore", E2E, *args])
        finally:
            e2e_status = e2e.wait()
        log.seek(0)
        print(f"\n==== {E2E} (ran beside the rest) ====", flush=True)
        sys.stdout.write(log.read())
    # pytest's 5 is "no tests collected": a -k that selects nothing in one half is not a failure.
    statuses = [s for s in (rest, e2e_status) if s not in (0, 5)]
    if not statuses and rest == e2e_status == 5:
        return 5
    return statuses[0] if statuses else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
