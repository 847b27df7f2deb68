"""The Spark batch jobs' logic: derivatives, compaction, garbage collection and retention."""
