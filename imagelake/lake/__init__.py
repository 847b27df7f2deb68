"""The lake: object store, key layout, Parquet tables and their schemas, the read rule."""
