"""Retries: one place for how a failure is tried again, because it either passes or does not.

- A step that fails (S3, DynamoDB, Spark) is retried inside its run, twice, after 10 s then
  20 s (``STEP_RETRY``, on each asset of the real-time and batch paths, so a run started from
  the UI's Materialize button or the CLI has it too). The retries show in the run that failed.
  Every step is idempotent (deterministic keys, whole files), so repeating one is safe.
- A run stopped half-way (Ctrl-C on `make dev`, a lost pod) is launched again by Dagster's run
  retries, at most twice: the instance sets it for every run (infra/local/dagster.yaml,
  infra/k8s/dagster/values.yaml), the jobs add ``RUN_RETRY_TAGS``. Run retries skip runs whose
  steps failed: the step retries already had their go. The Kafka sensor has moved past a batch
  once its run is launched, so without this an interrupted batch stays `accepted` for good.
- A real-time batch whose run failed for good is not left behind: ``failed_batch_sensor``
  (orchestration/backlog.py) runs it again, first after ``BATCH_RERUN_FIRST_DELAY`` (well after any
  run retry), then after twice as long each time, up to ``BATCH_RERUN_MAX_DELAY``, until it passes
  or its events leave the retention period. A run whose steps failed in Dagster's own machinery, not
  in our code (the instance's database lost mid-run: Dagster retries no such step, and its run
  retries skip runs whose steps failed), is run again at the sensor's next tick, once, before the
  backoff applies (``orchestration/backlog.failed_in_dagster``).
- A failure that cannot pass by itself (a day outside the partitions, a day still open, image
  ids not of the day) raises ``dg.Failure(allow_retries=False)`` and fails once.

The warehouse job opts out (``NO_RUN_RETRY_TAGS``): its sensor and hourly schedule build the
days again anyway.
"""

from datetime import timedelta

import dagster as dg

STEP_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)

#: A retried run runs whole: every job is idempotent and a step's inputs are not kept for a
#: retry of the failed steps alone.
RUN_RETRY_TAGS = {
    "dagster/max_retries": "2",
    "dagster/retry_strategy": "ALL_STEPS",
    "dagster/retry_on_asset_or_op_failure": "false",
}
NO_RUN_RETRY_TAGS = {"dagster/max_retries": "0"}

BATCH_RERUN_FIRST_DELAY = timedelta(minutes=5)
BATCH_RERUN_MAX_DELAY = timedelta(hours=6)


def batch_rerun_delay(attempt: int) -> timedelta:
    """How long after a failed real-time batch run its ``attempt``-th re-run waits (1, 2, ...)."""
    return min(BATCH_RERUN_FIRST_DELAY * 2 ** max(0, attempt - 1), BATCH_RERUN_MAX_DELAY)
