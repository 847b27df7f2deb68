"""imagelake: the domain library (no Dagster import).

Everything the upload API, the Dagster code location and the Spark jobs share
lives here: settings, the lake layout, object storage, the event schema, image
handling and the catalog.
"""
