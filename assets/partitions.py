"""Partitions shared by assets, jobs and sensors."""

import dagster as dg

#: One partition per Kafka micro-batch; the key is the batch id
#: ``<topic>-<partition>-<first offset>-<last offset>``, added by the Kafka sensor.
upload_batches = dg.DynamicPartitionsDefinition(name="upload_batches")
