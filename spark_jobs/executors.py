"""Where a job's tasks ran: Spark's executor ids and the Python of each, in the job's own report.

Every job runs its tasks through :func:`on_executors`, which brings back, beside each task's
rows, the interpreter that ran it: its executable and prefix, the packed environment it runs
from (imagelake/batch/packed_env.py) and any package it loaded from elsewhere. On a cluster that
is what shows the executors ran the archive from ``make spark-package``, not the driver's venv or
checkout. :func:`executor_report` adds Spark's own count of tasks per executor id.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from imagelake.batch.packed_env import imported_from_outside, running

_ROW, _PYTHON = "row", "python"


def interpreter() -> dict[str, Any]:
    """This Python process, as a task reports it."""
    env = running()
    spark_libs = [
        os.path.dirname(os.path.dirname(module.__file__))
        for name in ("pyspark", "py4j")
        if (module := sys.modules.get(name)) is not None and module.__file__
    ]
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "python": platform.python_version(),
        "package": env.digest if env else None,
        # Packages loaded from neither this environment, the standard library nor the Spark
        # that runs it (pyspark, py4j): on a cluster's executor, none.
        "imported_from_outside": imported_from_outside(spark_libs),
    }


def _tagged(task: Callable[[Iterable[Any]], Iterable[Any]], items: Iterable[Any]) -> Iterator[tuple]:
    for row in task(items):
        yield _ROW, row
    yield _PYTHON, interpreter()


def on_executors(rdd: Any, task: Callable[[Iterable[Any]], Iterable[Any]]) -> tuple[list, list[dict]]:
    """``rdd.mapPartitions(task).collect()``, and the Python that ran each partition."""
    tagged = rdd.mapPartitions(partial(_tagged, task)).collect()
    return [v for tag, v in tagged if tag == _ROW], [v for tag, v in tagged if tag == _PYTHON]


def executor_report(spark: Any, pythons: list[dict]) -> dict[str, Any]:
    """The executors that ran this job's tasks, by Spark's executor id, and their Pythons.

    From Spark's status store (the application is this one job): completed and failed tasks per
    executor, including executors lost meanwhile. Through py4j, as PySpark reaches its JVM side;
    if that ever fails the job still reports, saying the counts are unavailable.
    """
    distinct = sorted(
        {(p["host"], p["pid"]): p for p in pythons}.values(), key=lambda p: (p["host"], p["pid"])
    )
    try:
        executors = _task_counts(spark)
        failed = _failed_task_attempts(spark)
    except Exception as exc:  # py4j or Spark's internals changed: report what is known
        return {"executor_ids": [], "executors": f"unavailable: {exc}", "executor_pythons": distinct}
    return {
        "executor_ids": sorted(e["id"] for e in executors if e["completed_tasks"]),
        "executors": executors,
        # Task attempts that failed and were run again (an executor lost, say); the job succeeded.
        "failed_task_attempts": failed,
        "executor_pythons": distinct,
    }


def _failed_task_attempts(spark: Any) -> int:
    tracker = spark.sparkContext.statusTracker()
    stages = {
        s for job in tracker.getJobIdsForGroup() if (info := tracker.getJobInfo(job)) for s in info.stageIds
    }
    return sum(info.numFailedTasks for s in stages if (info := tracker.getStageInfo(s)) is not None)


def _task_counts(spark: Any) -> list[dict[str, Any]]:
    context = spark.sparkContext._jsc.sc()
    context.listenerBus().waitUntilEmpty()  # the status store is fed asynchronously
    summaries = context.statusStore().executorList(False)  # active and lost executors alike
    executors = []
    for i in range(summaries.size()):
        summary = summaries.apply(i)
        # Every executor of a cluster, lost ones too (a lost one's last task may not count as its
        # own failure); locally the driver is the executor, counted when it ran tasks.
        if summary.id() != "driver" or summary.completedTasks() or summary.failedTasks():
            executors.append(
                {
                    "id": summary.id(),
                    "host_port": summary.hostPort(),
                    "completed_tasks": summary.completedTasks(),
                    "failed_tasks": summary.failedTasks(),
                    "active": summary.isActive(),
                }
            )
    return sorted(executors, key=lambda e: e["id"])
