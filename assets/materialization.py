"""Helpers that turn run facts into Dagster materialization metadata."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from imagelake.lake.tables import WrittenFile


def files_metadata(files: Sequence[WrittenFile]) -> dict[str, dg.MetadataValue]:
    """Rows, bytes and keys of the files a step wrote."""
    return {
        "files": dg.MetadataValue.json([f.key for f in files]),
        "bytes_written": dg.MetadataValue.int(sum(f.size for f in files)),
    }


def preview(rows: Sequence[dict], columns: Sequence[str], limit: int = 10) -> dg.MetadataValue:
    """A small Markdown table of the first rows, for the asset page."""
    if not rows:
        return dg.MetadataValue.md("_no rows_")
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join(
        "| " + " | ".join(str(r.get(c, "")).replace("|", "\\|")[:80] for c in columns) + " |\n"
        for r in rows[:limit]
    )
    more = f"\n_{len(rows) - limit} more rows_" if len(rows) > limit else ""
    return dg.MetadataValue.md(head + body + more)
