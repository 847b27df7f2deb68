"""The upload service (FastAPI): stores images in the raw zone and announces them on Kafka."""
