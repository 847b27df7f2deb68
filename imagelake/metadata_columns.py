"""Column names of ``image_metadata`` shared by the real-time run and the catalog.

A module of its own, importing nothing, so the catalog (and through it the
Spark jobs, ``imagelake.derive``) need not import :mod:`imagelake.batches`,
which imports the Kafka client.
"""

from __future__ import annotations

#: Columns of ``image_metadata`` filled from :class:`~imagelake.imaging.ImageFacts` (null when failed).
FACT_COLUMNS = (
    "format",
    "width",
    "height",
    "mode",
    "bit_depth",
    "frame_count",
    "orientation",
    "has_icc",
    "has_gps",
    "exif_captured_at",
    "camera_make",
    "camera_model",
    "phash",
    "brightness_mean",
    "contrast",
    "colourfulness",
)
