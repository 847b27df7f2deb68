"""A warehouse run worker yields the CPU once, to the same niceness however often it asks."""

import multiprocessing
import os

from imagelake.settings import WAREHOUSE_BUILD_NICENESS
from orchestration.run_worker import in_run_worker, yield_cpu_to_realtime


def _as_run_worker(results) -> None:
    results.put((in_run_worker(), yield_cpu_to_realtime(), yield_cpu_to_realtime(), os.nice(0)))


def test_a_run_worker_lowers_its_priority_once():
    context = multiprocessing.get_context("spawn")  # how Dagster's code server starts run workers
    results = context.Queue()
    worker = context.Process(target=_as_run_worker, args=(results,))
    worker.start()
    worker.join(60)
    assert results.get(timeout=5) == (
        True,
        WAREHOUSE_BUILD_NICENESS,
        WAREHOUSE_BUILD_NICENESS,
        WAREHOUSE_BUILD_NICENESS,
    )


def test_the_test_process_is_not_a_run_worker_and_keeps_its_priority():
    before = os.nice(0)
    assert not in_run_worker()
    assert yield_cpu_to_realtime() is None
    assert os.nice(0) == before
