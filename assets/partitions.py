"""Partitions shared by assets, jobs and sensors."""

import dagster as dg

#: One partition per Kafka micro-batch; the key is the batch id
#: ``<topic>-<partition>-<first offset>-<last offset>``, added by the Kafka sensor.
upload_batches = dg.DynamicPartitionsDefinition(name="upload_batches")

#: One partition per upload date (UTC), today's included: the batch jobs' unit of work.
#: Data older than the retention period is gone, so only the last days' partitions hold anything.
upload_days = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1, timezone="UTC")
