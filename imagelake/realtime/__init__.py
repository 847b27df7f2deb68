"""The real-time path: upload events, Kafka, batches, the hash index, duplicate resolution."""
