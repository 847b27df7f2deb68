"""What every mart should hold, computed from the lake's Parquet in plain pandas.

An independent second implementation of the marts' definitions (docs in
dbt_project/models/marts/, each model's YAML beside its SQL), used to check the
dbt models against the curated data they read. It reads the files directly and
shares no SQL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from imagelake.lake.layout import TABLE_PREFIXES


def read_table(lake_root: Path, table: str) -> pd.DataFrame:
    folder = lake_root / TABLE_PREFIXES[table]
    files = sorted(folder.glob("dt=*/*.parquet"))
    if not files:
        return pd.DataFrame()
    return ds.dataset([str(f) for f in files], format="parquet").to_table().to_pandas()


def _ms(series: pd.Series) -> pd.Series:
    """Whole milliseconds since the epoch (what date_diff('millisecond') counts)."""
    return series.astype("datetime64[us, UTC]").astype("int64") // 1000


def _seconds(start: pd.Series, finish: pd.Series) -> np.ndarray:
    """Seconds from ``start`` to ``finish`` in whole milliseconds; NaN where ``finish`` is missing."""
    known = finish.notna()
    return np.where(known, (_ms(finish.where(known, start)) - _ms(start)) / 1000.0, np.nan)


def _day(series: pd.Series) -> pd.Series:
    return series.dt.tz_convert("UTC").dt.date


def images(lake_root: Path) -> pd.DataFrame:
    """One row per uploaded image (first delivery), with its outcome and derivatives."""
    events = read_table(lake_root, "upload_events")
    if events.empty:
        return events
    events = events.sort_values(["image_id", "kafka_partition", "kafka_offset", "batch_id"])
    events = events.drop_duplicates("image_id").set_index("image_id")
    events["upload_date"] = _day(events["uploaded_at"])
    meta = read_table(lake_root, "image_metadata")
    if not meta.empty:
        meta = meta.sort_values(
            ["image_id", "processed_at", "batch_id", "duplicate_of"], na_position="last"
        ).drop_duplicates("image_id")
        meta = meta.set_index("image_id")[
            ["status", "processed_at", "duplicate_of", "duplicate_kind", "duplicate_distance"]
        ]
        events = events.join(meta)
    else:
        for column in ("status", "processed_at", "duplicate_of", "duplicate_kind", "duplicate_distance"):
            events[column] = None
    events["status"] = events["status"].fillna("pending")
    events["seconds_to_processed"] = _seconds(events["uploaded_at"], events["processed_at"])
    derivatives = read_table(lake_root, "derivatives")
    if not derivatives.empty:
        derivatives["format"] = derivatives["format"].str.lower()
        # the first write a row carries, or (files from before the job carried it) a written row's own time
        if "first_written_at" not in derivatives:
            derivatives["first_written_at"] = pd.NaT
        derivatives["first_write"] = derivatives["first_written_at"].fillna(
            derivatives["created_at"].where(derivatives["status"] == "written")
        )
        first_written = (
            derivatives.groupby(["image_id", "size", "format"])["first_write"]
            .min()
            .rename("first_written_at")
        )
        derivatives = derivatives.sort_values(["created_at", "run_id"]).drop_duplicates(
            ["image_id", "size", "format"], keep="last"
        )
        written = (
            derivatives[derivatives["status"] == "written"]
            .drop(columns=["first_written_at"])
            .join(first_written, on=["image_id", "size", "format"])
        )
        per_image = written.groupby("image_id").agg(
            derivative_bytes=("size_bytes", "sum"), derivatives_ready_at=("first_written_at", "max")
        )
        events = events.join(per_image)
    else:
        events["derivative_bytes"], events["derivatives_ready_at"] = 0, pd.NaT
    events["derivative_bytes"] = events["derivative_bytes"].fillna(0).astype("int64")
    events["seconds_to_derivatives"] = _seconds(events["uploaded_at"], events["derivatives_ready_at"])
    events["format"] = events["format"].str.lower()
    return events.reset_index()


FORMATS = ("jpeg", "png", "webp", "gif", "tiff")
DAILY_COLUMNS = (
    "images", "bytes", "distinct_clients", *(f"{f}_images" for f in FORMATS), "images_under_100kb",
    "images_100kb_to_1mb", "images_1mb_to_10mb", "images_over_10mb", "processed_images",
    "failed_images", "pending_images", "duplicate_images", "dead_letters",
)  # fmt: skip


def daily_upload_stats(lake_root: Path) -> dict:
    imgs = images(lake_root)
    out: dict = {}
    for day, g in imgs.groupby("upload_date") if not imgs.empty else []:
        size = g["size_bytes"]
        out[day] = {
            "images": len(g),
            "bytes": int(size.sum()),
            "distinct_clients": g["client_id"].nunique(),
            **{f"{fmt}_images": int((g["format"] == fmt).sum()) for fmt in FORMATS},
            "images_under_100kb": int((size < 100_000).sum()),
            "images_100kb_to_1mb": int(((size >= 100_000) & (size < 1_000_000)).sum()),
            "images_1mb_to_10mb": int(((size >= 1_000_000) & (size < 10_000_000)).sum()),
            "images_over_10mb": int((size >= 10_000_000).sum()),
            "processed_images": int((g["status"] == "processed").sum()),
            "failed_images": int((g["status"] == "failed").sum()),
            "pending_images": int((g["status"] == "pending").sum()),
            "duplicate_images": int(g["duplicate_of"].notna().sum()),
            "dead_letters": 0,
        }
    dead = read_table(lake_root, "dead_letters")
    if not dead.empty:
        dead = dead.drop_duplicates(["topic", "kafka_partition", "kafka_offset"])
        for day, count in _day(dead["kafka_timestamp"]).value_counts().items():
            row = out.setdefault(day, dict.fromkeys(DAILY_COLUMNS, 0))
            row["dead_letters"] = int(count)
    return out


def client_usage_daily(lake_root: Path) -> dict:
    imgs = images(lake_root)
    out = {}
    for (day, client), g in imgs.groupby(["upload_date", "client_id"]) if not imgs.empty else []:
        out[(day, client)] = {
            "uploads": len(g),
            "bytes_uploaded": int(g["size_bytes"].sum()),
            "duplicate_uploads": int(g["duplicate_of"].notna().sum()),
            "exact_duplicates": int((g["duplicate_kind"] == "exact").sum()),
            "near_duplicates": int((g["duplicate_kind"] == "near").sum()),
            "processed": int((g["status"] == "processed").sum()),
            "failures": int((g["status"] == "failed").sum()),
            "derivative_bytes": int(g["derivative_bytes"].sum()),
        }
    return out


def duplicate_images(lake_root: Path) -> dict:
    imgs = images(lake_root)
    if imgs.empty:
        return {}
    by_id = imgs.set_index("image_id")
    out = {}
    for row in imgs[imgs["duplicate_of"].notna()].itertuples():
        original = by_id.loc[row.duplicate_of] if row.duplicate_of in by_id.index else None
        out[row.image_id] = {
            "upload_date": row.upload_date,
            "duplicate_of": row.duplicate_of,
            "duplicate_kind": row.duplicate_kind,
            "distance": 0 if row.duplicate_kind == "exact" else int(row.duplicate_distance),
            "original_upload_date": None if original is None else original["upload_date"],
            "same_client": None if original is None else original["client_id"] == row.client_id,
        }
    return out


def processing_latency_daily(lake_root: Path) -> dict:
    imgs = images(lake_root)
    out = {}
    for day, g in imgs.groupby("upload_date") if not imgs.empty else []:
        processed = g.loc[g["status"] == "processed", "seconds_to_processed"].to_numpy()
        derived = g["seconds_to_derivatives"].dropna().to_numpy()
        if not len(processed) and not len(derived):
            continue
        row = {"processed_images": len(processed), "images_with_derivatives": len(derived)}
        for name, values in (("processed", processed), ("derivatives", derived)):
            if len(values):
                row[f"{name}_p50_s"] = float(np.percentile(values, 50))
                row[f"{name}_p95_s"] = float(np.percentile(values, 95))
                row[f"{name}_max_s"] = float(values.max())
            else:
                row.update({f"{name}_p50_s": None, f"{name}_p95_s": None, f"{name}_max_s": None})
        out[day] = row
    return out


def storage_usage_daily(lake_root: Path) -> dict:
    inv = read_table(lake_root, "storage_inventory")
    if inv.empty:
        return {}
    inv = inv.drop_duplicates(["snapshot_at", "zone", "prefix", "data_date"])
    inv["usage_date"] = _day(inv["snapshot_at"])
    latest = inv.groupby("usage_date")["snapshot_at"].transform("max")
    inv = inv[inv["snapshot_at"] == latest]
    out = {}
    for (day, zone), g in inv.groupby(["usage_date", "zone"]):
        out[(day, zone)] = {
            "prefixes": g["prefix"].nunique(),
            "objects": int(g["objects"].sum()),
            "stored_bytes": int(g["bytes"].sum()),
        }
    return out
