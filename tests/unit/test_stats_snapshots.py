"""Statistics snapshots in the lake: published whole and checked, read by replicas that never serve
a damaged one, and answered per client without any other client's figures."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from imagelake.lake import layout
from imagelake.lake.store import Lake
from imagelake.stats.answers import SERVED_COLUMNS, StatsAnswers, served_rows
from imagelake.stats.snapshot_files import (
    KEPT_GENERATIONS,
    PRUNE_AFTER,
    SERVED_TABLES,
    SnapshotDamaged,
    publish,
    read_manifest,
)
from imagelake.stats.snapshot_reader import SnapshotReader

SERVING_MODELS = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "serving"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
D1, D2, D3 = date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)


def usage_row(day: date, client: str, uploads: int) -> dict:
    return {
        "upload_date": day,
        "client_id": client,
        "uploads": uploads,
        "bytes_uploaded": uploads * 1000,
        "duplicate_uploads": 1,
        "failures": 0,
        "derivatives_ready": uploads - 1,
    }


def service_row(day: date, images: int, listed: bool = True) -> dict:
    row = {c: 0 for c in SERVED_COLUMNS["service_daily"]}
    storage = {
        f"{z}_{m}": (7 if listed else None)
        for z in ("raw", "curated", "derivatives")
        for m in ("objects", "bytes")
    }
    return {
        **row,
        **storage,
        "stats_date": day,
        "images": images,
        "bytes": images * 10,
        "jpeg_images": images,
        "processed_p50_s": Decimal("1.250"),
        "processed_p95_s": None,
        "storage_listed_at": NOW if listed else None,
    }


def tables(usage: list[dict], service: list[dict]) -> dict[str, pa.Table]:
    return {"client_usage": pa.Table.from_pylist(usage), "service_daily": pa.Table.from_pylist(service)}


SAMPLE = tables(
    [usage_row(D1, "a", 3), usage_row(D3, "a", 5), usage_row(D2, "b", 40)],
    [service_row(D1, 3), service_row(D2, 40, listed=False), service_row(D3, 5)],
)


def answers_of(sample=SAMPLE) -> StatsAnswers:
    rows = served_rows(sample)
    return StatsAnswers(rows["client_usage"], rows["service_daily"], NOW, "g1")


def test_the_served_columns_are_those_of_the_serving_models_contracts():
    for name, model in SERVED_TABLES.items():
        spec = yaml.safe_load((SERVING_MODELS / f"{model}.yml").read_text())["models"][0]
        assert spec["config"]["contract"]["enforced"] is True
        assert tuple(c["name"] for c in spec["columns"]) == SERVED_COLUMNS[name], name


def test_a_client_gets_its_own_days_in_range_with_totals_and_nothing_of_another_client():
    body = json.loads(answers_of().client_usage("a", D1, D3))
    assert body["client_id"] == "a" and (body["from"], body["to"]) == ("2026-12-01", "2026-12-03")
    assert body["as_of"] == NOW.isoformat()
    assert [d["date"] for d in body["days"]] == ["2026-12-01", "2026-12-03"]
    assert body["days"][0] == {
        "date": "2026-12-01", "uploads": 3, "bytes": 3000, "duplicates": 1, "failures": 0, "derivatives_ready": 2,
    }  # fmt: skip
    assert body["totals"] == {
        "uploads": 8,
        "bytes": 8000,
        "duplicates": 2,
        "failures": 0,
        "derivatives_ready": 6,
    }
    narrower = json.loads(answers_of().client_usage("a", D2, D3))
    assert [d["date"] for d in narrower["days"]] == ["2026-12-03"] and narrower["totals"]["uploads"] == 5
    unknown = json.loads(answers_of().client_usage("nobody", D1, D3))
    assert unknown["days"] == [] and unknown["totals"]["uploads"] == 0


def test_the_service_days_carry_formats_latency_and_storage_or_null_before_a_listing():
    body = json.loads(answers_of().service(D1, D3))
    assert [d["date"] for d in body["days"]] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    first, second = body["days"][0], body["days"][1]
    assert first["formats"]["jpeg"] == 3 and first["processing_latency_s"] == {"p50": 1.25, "p95": None}
    assert first["storage"]["raw"] == {"objects": 7, "bytes": 7}
    assert second["storage"] is None


def test_before_any_build_every_answer_is_empty():
    empty = StatsAnswers.empty()
    assert json.loads(empty.client_usage("a", D1, D3))["days"] == []
    body = json.loads(empty.service(D1, D3))
    assert body == {"from": "2026-12-01", "to": "2026-12-03", "as_of": None, "days": []}


def test_published_snapshots_are_read_back_and_old_generations_pruned(lake: Lake):
    reader = SnapshotReader(lake)
    assert reader.poll().no_snapshot  # no build yet: empty answers, not an error
    now = datetime.now(UTC)
    first, pruned = publish(lake, SAMPLE, now)
    outcome = reader.poll()
    assert outcome.loaded == first and not outcome.failures and not pruned
    assert json.loads(reader.answers.client_usage("b", D1, D3))["totals"]["uploads"] == 40
    assert reader.poll().loaded is None  # nothing new: nothing loaded again

    for i in range(1, KEPT_GENERATIONS + 2):
        _, pruned = publish(lake, SAMPLE, now + timedelta(seconds=i))
        assert pruned == []  # unlisted generations stay while a replica may still be reading them
    manifest = read_manifest(lake)
    assert manifest is not None and len(manifest.generations) == KEPT_GENERATIONS
    assert len(stored_generations(lake)) == KEPT_GENERATIONS + 2
    _, pruned = publish(lake, SAMPLE, now + PRUNE_AFTER + timedelta(minutes=1))
    assert first.id in pruned and len(pruned) == 3
    assert stored_generations(lake) == {g.id for g in read_manifest(lake).generations}


def stored_generations(lake: Lake) -> set[str]:
    return {o.key.split("/")[2] for o in lake.list(layout.STATS_PREFIX) if o.key != layout.STATS_MANIFEST}


def damage(lake: Lake, key: str) -> None:
    data = bytearray(lake.get(key))
    data[len(data) // 2] ^= 0xFF
    lake.put(key, bytes(data))


def test_a_damaged_snapshot_is_never_served_and_the_last_good_one_is(lake: Lake):
    good, _ = publish(lake, SAMPLE, NOW)
    reader = SnapshotReader(lake)
    reader.poll()
    newer = tables([usage_row(D3, "a", 99)], [service_row(D3, 99)])
    bad, _ = publish(lake, newer, NOW + timedelta(minutes=1))
    damage(lake, bad.files["client_usage"].key)

    outcome = reader.poll()
    assert outcome.loaded is None and len(outcome.failures) == 1
    assert bad.id in outcome.failures[0] and "does not match the manifest" in outcome.failures[0]
    assert reader.answers.generation == good.id
    assert json.loads(reader.answers.client_usage("a", D3, D3))["totals"]["uploads"] == 5

    # A replica that starts now has nothing to keep: it falls back on the older generation.
    fresh = SnapshotReader(lake)
    assert fresh.poll().loaded == good

    # The damaged one is tried again after a back-off, not at every poll.
    assert reader.poll().failures == []


def test_a_damaged_manifest_keeps_what_is_served_and_the_next_publication_replaces_it(lake: Lake):
    publish(lake, SAMPLE, NOW)
    reader = SnapshotReader(lake)
    reader.poll()
    lake.put(layout.STATS_MANIFEST, b"{not json")
    outcome = reader.poll()
    assert outcome.failures and "manifest" in outcome.failures[0]
    assert json.loads(reader.answers.client_usage("a", D1, D1))["totals"]["uploads"] == 3
    with pytest.raises(SnapshotDamaged):
        read_manifest(lake)
    latest, _ = publish(lake, SAMPLE, NOW + timedelta(minutes=1))
    assert reader.poll().loaded == latest


def test_a_snapshot_without_a_served_column_is_refused(lake: Lake):
    reader = SnapshotReader(lake)
    publish(lake, {**SAMPLE, "client_usage": SAMPLE["client_usage"].drop_columns(["failures"])}, NOW)
    outcome = reader.poll()
    assert outcome.loaded is None and "lacks the columns ['failures']" in outcome.failures[0]
