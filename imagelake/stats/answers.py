"""The statistics a snapshot answers, held in memory and shaped for the API, ready to send.

A snapshot is small (one row per client and day, one per day for the service) and is replaced
whole every refresh interval, so a replica turns it once into what requests need: per client, its
days in date order with each day's JSON already rendered and running totals, so that a request is
a binary search, a join of rendered rows and a subtraction, whatever the range. The statistics
endpoints are the API's most frequent reads (dashboards poll them); rendering rows per request
with pydantic cost more than the rest of the request.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

#: Usage figures of a client's day, as the API names them (and the serving column each comes from).
USAGE_FIELDS: dict[str, str] = {
    "uploads": "uploads",
    "bytes": "bytes_uploaded",
    "duplicates": "duplicate_uploads",
    "failures": "failures",
    "derivatives_ready": "derivatives_ready",
}
FORMATS = ("jpeg", "png", "webp", "gif", "tiff")
ZONES = ("raw", "curated", "derivatives")
#: The columns each served table must have (their dbt contracts in dbt_project/models/serving/
#: declare them; tests/unit/test_stats_answers.py keeps the two lists equal).
SERVED_COLUMNS: dict[str, tuple[str, ...]] = {
    "client_usage": ("upload_date", "client_id", *USAGE_FIELDS.values()),
    "service_daily": (
        "stats_date",
        "images",
        "bytes",
        *(f"{f}_images" for f in FORMATS),
        "duplicate_images",
        "failed_images",
        "processed_p50_s",
        "processed_p95_s",
        *(f"{z}_{m}" for z in ZONES for m in ("objects", "bytes")),
        "storage_listed_at",
    ),
}


class SnapshotIncompatible(ValueError):
    """A snapshot table lacks a column the API serves (published by another version of the models)."""


def served_rows(tables: Mapping[str, pa.Table]) -> dict[str, list[dict]]:
    """The served tables as rows, once each has the columns the answers need."""
    rows = {}
    for name, columns in SERVED_COLUMNS.items():
        missing = [c for c in columns if c not in tables[name].column_names]
        if missing:
            raise SnapshotIncompatible(f"snapshot table {name} lacks the columns {missing}")
        rows[name] = tables[name].select(list(columns)).to_pylist()
    return rows


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ClientDays:
    """One client's days in date order, each rendered, with running totals (``totals[i]`` sums the
    days before ``i``)."""

    days: list[date]
    rendered: list[bytes]
    totals: list[tuple[int, ...]]

    def span(self, first: date, last: date) -> tuple[int, int]:
        return bisect.bisect_left(self.days, first), bisect.bisect_right(self.days, last)


def usage_day(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"date": row["upload_date"].isoformat(), **{k: row[c] for k, c in USAGE_FIELDS.items()}}


def service_day(row: Mapping[str, Any]) -> dict[str, Any]:
    listed = row["storage_listed_at"] is not None
    return {
        "date": row["stats_date"].isoformat(),
        "images": row["images"],
        "bytes": row["bytes"],
        "formats": {f: row[f"{f}_images"] for f in FORMATS},
        "duplicates": row["duplicate_images"],
        "failures": row["failed_images"],
        "processing_latency_s": {
            "p50": _number(row["processed_p50_s"]),
            "p95": _number(row["processed_p95_s"]),
        },
        "storage": (
            {z: {"objects": row[f"{z}_objects"], "bytes": row[f"{z}_bytes"]} for z in ZONES}
            if listed
            else None
        ),
    }


class StatsAnswers:
    """Answers to the statistics endpoints from one snapshot; immutable once built."""

    def __init__(
        self,
        client_usage: list[dict],
        service_daily: list[dict],
        published_at: datetime | None,
        generation: str,
    ) -> None:
        self.published_at = published_at
        self.generation = generation
        by_client: dict[str, list[dict]] = {}
        for row in sorted(client_usage, key=lambda r: (r["client_id"], r["upload_date"])):
            by_client.setdefault(row["client_id"], []).append(row)
        self._clients = {client: self._client_days(rows) for client, rows in by_client.items()}
        service = sorted(service_daily, key=lambda r: r["stats_date"])
        self._service_days = [row["stats_date"] for row in service]
        self._service_rendered = [_dumps(service_day(row)) for row in service]
        self._as_of = _dumps(published_at.isoformat() if published_at else None)

    @staticmethod
    def _client_days(rows: list[dict]) -> ClientDays:
        totals = [(0,) * len(USAGE_FIELDS)]
        for row in rows:
            day = tuple(row[c] or 0 for c in USAGE_FIELDS.values())
            totals.append(tuple(a + b for a, b in zip(totals[-1], day, strict=True)))
        return ClientDays([r["upload_date"] for r in rows], [_dumps(usage_day(r)) for r in rows], totals)

    @classmethod
    def empty(cls) -> StatsAnswers:
        """Before any warehouse build has published a snapshot: every answer is empty."""
        return cls([], [], None, "")

    def client_usage(self, client_id: str, first: date, last: date) -> bytes:
        """The JSON body of a client's usage per day from ``first`` to ``last`` (days without uploads
        are left out), with totals over the range."""
        head = _dumps({"client_id": client_id, "from": first.isoformat(), "to": last.isoformat()})[:-1]
        days = self._clients.get(client_id)
        if days is None:
            rendered: list[bytes] = []
            totals = (0,) * len(USAGE_FIELDS)
        else:
            start, end = days.span(first, last)
            rendered = days.rendered[start:end]
            totals = tuple(b - a for a, b in zip(days.totals[start], days.totals[end], strict=True))
        total = _dumps(dict(zip(USAGE_FIELDS, totals, strict=True)))
        return b"".join(
            (head, b',"as_of":', self._as_of, b',"days":[', b",".join(rendered), b'],"totals":', total, b"}")
        )

    def service(self, first: date, last: date) -> bytes:
        """The JSON body of the service's statistics per day from ``first`` to ``last``."""
        start = bisect.bisect_left(self._service_days, first)
        end = bisect.bisect_right(self._service_days, last)
        head = _dumps({"from": first.isoformat(), "to": last.isoformat()})[:-1]
        rows = b",".join(self._service_rendered[start:end])
        return b"".join((head, b',"as_of":', self._as_of, b',"days":[', rows, b"]}"))
