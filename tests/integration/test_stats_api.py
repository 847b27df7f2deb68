"""The statistics endpoints and /metrics over real HTTP, served from the snapshot a real warehouse
build (dbt on DuckDB, through Dagster) published to the lake.

One warehouse is built for the module over generated days (tests/support/lake_data.py); the API
is started on it with a real Kafka broker behind the upload path.
"""

import asyncio
import json
import logging
import re
import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import httpx
import pytest

from imagelake.api.application import create_app
from imagelake.api.json_logs import JsonFormatter
from imagelake.api.stats_routes import ClientUsage, ServiceStats
from imagelake.lake import layout
from imagelake.lake.store import Lake
from imagelake.settings import get_settings
from imagelake.stats.snapshot_files import publish, read_manifest
from imagelake.warehouse.days import DayWindow
from tests.support import lake_data
from tests.support.lake_data import DayShape
from tests.support.servers import serve
from tests.support.warehouse_builds import build, rows

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
DAYS = lake_data.days_back(TODAY, 2)
SHAPE = DayShape(images=300, seed=11, clients=4, batch_size=100)
KEYS = "key-0:client-000,key-1:client-001,key-9:nobody"
OPERATOR = {"X-API-Key": "ops-key"}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory):
    """A lake of generated days, the warehouse built over them and its snapshot published."""
    data_dir = tmp_path_factory.mktemp("stats") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGELAKE_ENV", "local")
        mp.setenv("IMAGELAKE_DATA_DIR", str(data_dir))
        get_settings.cache_clear()
        settings = get_settings()
        lake = Lake.from_settings(settings)
        for day in DAYS:
            lake_data.write_day(lake, lake_data.generate_day(day, SHAPE))
        with dg.instance_for_test() as instance:
            result = build(settings, instance, DayWindow(DAYS[0], DAYS[-1]), snapshot=True)
        get_settings.cache_clear()
    assert result.success
    [check] = (
        result.get_asset_check_evaluations_for("stats_snapshot")
        if hasattr(result, "get_asset_check_evaluations_for")
        else [e for e in result.get_asset_check_evaluations() if e.check_name == "stats_snapshot_readable"]
    )
    assert check.passed
    return settings, result


@pytest.fixture
def api(published, settings_factory, kafka_bootstrap, topic):
    built, _ = published
    settings = settings_factory(
        IMAGELAKE_DATA_DIR=str(built.data_dir),
        IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        IMAGELAKE_UPLOADS_TOPIC=topic,
        IMAGELAKE_API_KEYS=KEYS,
        IMAGELAKE_OPERATOR_KEYS="ops-key:ops",
    )
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, settings


def usage(http: httpx.Client, key: str, **params) -> httpx.Response:
    return http.get("/v1/stats/usage", headers={"X-API-Key": key}, params=params)


def test_a_client_sees_its_own_usage_as_the_mart_holds_it(api):
    client, settings = api
    span = {"from": DAYS[0].isoformat(), "to": DAYS[-1].isoformat()}
    response = usage(client, "key-0", **span)
    assert response.status_code == 200, response.text
    body = ClientUsage.model_validate(response.json()).model_dump(by_alias=True)
    mart = sorted(
        (r for r in rows(settings, "marts.client_usage_daily") if r["client_id"] == "client-000"),
        key=lambda r: r["upload_date"],
    )
    assert body["client_id"] == "client-000" and body["as_of"] is not None
    assert [(d["date"], d["uploads"], d["bytes"], d["duplicates"], d["failures"]) for d in body["days"]] == [
        (
            r["upload_date"].isoformat(),
            r["uploads"],
            r["bytes_uploaded"],
            r["duplicate_uploads"],
            r["failures"],
        )
        for r in mart
    ]
    assert body["totals"]["uploads"] == sum(r["uploads"] for r in mart) > 0
    assert [d["derivatives_ready"] for d in body["days"]] == [r["derivatives_ready"] for r in mart]
    # HEAD answers like GET, with no body.
    head = client.head("/v1/stats/usage", headers={"X-API-Key": "key-0"}, params=span)
    assert head.status_code == 200 and head.content == b""


def test_another_clients_usage_is_never_visible_whatever_the_parameters(api):
    client, _ = api
    span = {"from": DAYS[0].isoformat(), "to": DAYS[-1].isoformat()}
    mine = usage(client, "key-1", **span).json()
    for params in ({"client_id": "client-000"}, {"client": "client-000"}, {"client_id[]": "client-000"}):
        assert usage(client, "key-1", **span, **params).json() == mine
    assert mine["client_id"] == "client-001"
    assert mine["days"] != usage(client, "key-0", **span).json()["days"]
    # A client with no uploads sees nothing at all, not the service's or anyone's figures.
    nobody = usage(client, "key-9", **span).json()
    assert nobody["days"] == [] and nobody["totals"]["uploads"] == 0
    assert client.get("/v1/stats/usage/client-000", headers={"X-API-Key": "key-1"}).status_code == 404
    assert usage(client, "ops-key", **span).status_code == 401  # an operator is not a client
    assert usage(client, "wrong", **span).status_code == 401


def test_an_operator_sees_the_service_and_a_client_key_is_refused(api):
    client, settings = api
    span = {"from": DAYS[0].isoformat(), "to": DAYS[-1].isoformat()}
    response = client.get("/v1/stats/service", headers=OPERATOR, params=span)
    assert response.status_code == 200, response.text
    body = ServiceStats.model_validate(response.json()).model_dump(by_alias=True)
    daily = {r["upload_date"].isoformat(): r for r in rows(settings, "marts.daily_upload_stats")}
    assert [d["date"] for d in body["days"]] == sorted(daily)
    for day in body["days"]:
        mart = daily[day["date"]]
        assert (day["images"], day["bytes"], day["duplicates"], day["failures"]) == (
            mart["images"], mart["bytes"], mart["duplicate_images"], mart["failed_images"],
        )  # fmt: skip
        assert day["formats"] == {f: mart[f"{f}_images"] for f in ("jpeg", "png", "webp", "gif", "tiff")}
        assert day["processing_latency_s"]["p95"] is not None
    # Today's storage per zone, from the build's own listing of the lake.
    assert body["days"][-1]["date"] == TODAY.isoformat()
    assert body["days"][-1]["storage"]["raw"]["objects"] > 0
    refused = client.get("/v1/stats/service", headers={"X-API-Key": "key-0"}, params=span)
    assert refused.status_code == 403 and "operator key" in refused.json()["detail"]
    assert client.get("/v1/stats/service", params=span).status_code == 401


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"from": "2026-02-03", "to": "2026-02-01"}, "the range is inverted"),
        ({"from": (TODAY - timedelta(days=380)).isoformat()}, "at most 366 per request"),
        ({"to": (TODAY + timedelta(days=1)).isoformat()}, "is in the future"),
        ({"from": "03/02/2026"}, "from must be a date as YYYY-MM-DD"),
        ({"to": "2026-02-30"}, "to must be a date as YYYY-MM-DD"),
    ],
)
def test_a_bad_date_range_is_a_400_naming_the_problem(api, params, says):
    client, _ = api
    for path, key in (("/v1/stats/usage", "key-0"), ("/v1/stats/service", "ops-key")):
        response = client.get(path, headers={"X-API-Key": key}, params=params)
        assert response.status_code == 400, response.text
        assert says in response.json()["detail"]


def test_statistics_before_any_warehouse_build_are_empty_not_an_error(
    settings_factory, kafka_bootstrap, topic
):
    settings = settings_factory(IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap, IMAGELAKE_UPLOADS_TOPIC=topic)
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        mine = client.get("/v1/stats/usage", headers={"X-API-Key": "dev-key"})
        service = client.get("/v1/stats/service", headers={"X-API-Key": "dev-operator-key"})
    assert mine.status_code == 200 and mine.json()["days"] == [] and mine.json()["as_of"] is None
    assert service.status_code == 200 and service.json()["days"] == []


def test_a_damaged_snapshot_is_logged_counted_and_failed_in_dagster_while_the_last_good_one_is_served(
    published, settings_factory, kafka_bootstrap, topic, tmp_path, caplog
):
    built, _ = published
    lake = Lake.from_settings(built)
    own = Lake((tmp_path / "lake").as_uri())  # a copy: the module's snapshot stays intact
    for info in lake.list(layout.STATS_PREFIX):
        own.put(info.key, lake.get(info.key))
    settings = settings_factory(
        IMAGELAKE_LAKE_URL=own.url,
        IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        IMAGELAKE_UPLOADS_TOPIC=topic,
        IMAGELAKE_API_KEYS=KEYS,
    )
    span = {"from": DAYS[0].isoformat(), "to": DAYS[-1].isoformat()}
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        good = usage(client, "key-0", **span).json()
        tables = {name: lake_data_table(own, name) for name in ("client_usage", "service_daily")}
        bad, _ = publish(own, tables, datetime.now(UTC))
        key = bad.files["service_daily"].key
        own.put(key, own.get(key)[:-100])  # truncated after publication
        with caplog.at_level(logging.ERROR, logger="imagelake.api"):
            deadline = time.monotonic() + 30
            while "imagelake_stats_snapshot_failures_total 1.0" not in (text := client.get("/metrics").text):
                assert time.monotonic() < deadline, "the damaged snapshot was never noticed"
                time.sleep(0.5)
        assert usage(client, "key-0", **span).json() == good  # still the last good generation
    assert any(bad.id in r.getMessage() and "not loaded" in r.getMessage() for r in caplog.records)
    assert "imagelake_stats_snapshot_loads_total 1.0" in text

    # Dagster shows it too: the snapshot's check reads what is current, as a replica does.
    from assets.stats_snapshot import stats_snapshot_readable

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGELAKE_DATA_DIR", str(settings.data_dir))
        mp.setenv("IMAGELAKE_LAKE_URL", own.url)
        get_settings.cache_clear()
        result = dg.materialize([stats_snapshot_readable], selection=dg.AssetSelection.all_asset_checks())
        get_settings.cache_clear()
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed and key in (evaluation.description or "")


def lake_data_table(lake: Lake, name: str):
    """The current generation's table ``name``, as published (to publish it again)."""
    from imagelake.stats.snapshot_files import load_generation

    manifest = read_manifest(lake)
    assert manifest is not None
    return load_generation(lake, manifest.generations[0])[name]


def test_metrics_count_requests_by_route_and_a_flood_of_scrapes_costs_one_rendering_a_second(api):
    client, _ = api
    for _ in range(3):
        usage(client, "key-0")
    client.get("/v1/images/01M85QCKHR3ZJSJNCNT7KSAN6A", headers={"X-API-Key": "key-0"})
    client.get("/no/such/path")
    url = str(client.base_url)

    async def flood(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as scraper:
            return await asyncio.gather(*(scraper.get("/metrics") for _ in range(n)))

    started = time.monotonic()
    answers = asyncio.run(flood(400))
    elapsed = time.monotonic() - started
    assert {a.status_code for a in answers} == {200}
    last = client.get("/metrics").text
    renders = float(re.search(r"^imagelake_metrics_renders_total (\S+)$", last, re.M).group(1))
    assert renders <= elapsed + 3, (renders, elapsed)  # at most one per second, whatever the scrapers
    assert 'imagelake_http_requests_total{method="GET",route="/v1/stats/usage",status="200"} 3.0' in last
    assert 'route="/v1/images/{image_id}",status="503"' in last  # templates, never ids (no DynamoDB here)
    assert "01M85QCKHR3ZJSJNCNT7KSAN6A" not in last
    assert 'route="unmatched",status="404"' in last and "/no/such/path" not in last
    assert "imagelake_http_requests_in_flight" in last and 'route="/metrics"' not in last
    assert re.search(
        r'^imagelake_kafka_consumer_lag\{partition="\d"\} ', last, re.M
    )  # read in the background


def test_openapi_lists_the_statistics_and_docs_load_without_a_cdn(api):
    client, _ = api
    document = client.get("/openapi.json").json()
    assert {"/v1/stats/usage", "/v1/stats/service", "/metrics"} <= set(document["paths"])
    service = document["paths"]["/v1/stats/service"]["get"]
    assert set(service["responses"]) == {"200", "400", "401", "403"}
    assert {p["name"] for p in service["parameters"] if p["in"] == "query"} == {"from", "to"}
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert not re.search(r"(src|href)=['\"]https?://", html), html  # nothing from the internet
        for asset in re.findall(r"(?:src|href)=['\"](/[^'\"]+)['\"]", html):
            assert client.get(asset).status_code == 200, asset


def test_logs_are_json_with_the_request_id():
    formatter = JsonFormatter()
    record = logging.LogRecord("imagelake.api", logging.INFO, __file__, 1, "accepted %s", ("X",), None)
    from imagelake.api.request_ids import _current

    token = _current.set("req-12345678")
    try:
        line = json.loads(formatter.format(record))
    finally:
        _current.reset(token)
    assert line["message"] == "accepted X" and line["request_id"] == "req-12345678"
    assert line["level"] == "INFO" and date.fromisoformat(line["time"][:10])
