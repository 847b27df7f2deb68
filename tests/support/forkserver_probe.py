"""What a forked run worker finds already imported: a module that imports nothing of ours."""

import sys


def report_loaded(name: str, queue) -> None:
    queue.put(name in sys.modules)
