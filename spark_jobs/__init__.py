"""PySpark entry points (submitted by ``orchestration/spark.py``); each reports back through dagster-pipes.

They import :mod:`imagelake` for all logic and ``dagster_pipes`` to talk to
Dagster, nothing else of the project, so the same file runs under
``spark-submit --master local[*]`` and on EMR Serverless.
"""
