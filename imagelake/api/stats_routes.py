"""``GET /v1/stats/usage`` (a client's own usage) and ``GET /v1/stats/service`` (an operator's view).

Both answer from the statistics snapshot the replica holds in memory (imagelake/stats/), never
from the warehouse: fresh within the refresh interval, and never waiting for a build. The client
is the API key's: no parameter names another client, so none can show another client's figures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from imagelake.api.dependencies import UNAUTHORIZED
from imagelake.api.problems import problem
from imagelake.api.routing import get_and_head
from imagelake.settings import STATS_HISTORY_DAYS, STATS_MAX_RANGE_DAYS
from imagelake.stats.answers import StatsAnswers
from imagelake.stats.day_range import DEFAULT_DAYS, DayRange, RangeRefused, day_range


# The answers' shapes, for /docs and /openapi.json; the bodies are rendered by
# imagelake/stats/answers.py (tests/integration/test_stats_api.py validates them against these).
class UsageFigures(BaseModel):
    uploads: int = Field(description="images uploaded (each counted once)")
    bytes: int = Field(description="bytes uploaded")
    duplicates: int = Field(description="uploads that duplicate an earlier image, exactly or nearly")
    failures: int = Field(description="uploads that could not be processed")
    derivatives_ready: int | None = Field(description="uploads whose resized copies are written")


class UsageDay(UsageFigures):
    date: str = Field(description="upload date (UTC), YYYY-MM-DD")


class ClientUsage(BaseModel):
    client_id: str
    from_: str = Field(alias="from")
    to: str
    as_of: str | None = Field(description="when the figures were published (null: no warehouse build yet)")
    days: list[UsageDay] = Field(description="days with uploads, in date order")
    totals: UsageFigures


class Latency(BaseModel):
    p50: float | None
    p95: float | None


class ZoneStorage(BaseModel):
    objects: int
    bytes: int


class ServiceDay(BaseModel):
    date: str
    images: int
    bytes: int
    formats: dict[str, int] = Field(description="images per format: jpeg, png, webp, gif, tiff")
    duplicates: int
    failures: int
    processing_latency_s: Latency = Field(description="seconds from upload to processed")
    storage: dict[str, ZoneStorage] | None = Field(
        description="objects and bytes per zone (raw, curated, derivatives) that day; null before a listing"
    )


class ServiceStats(BaseModel):
    from_: str = Field(alias="from")
    to: str
    as_of: str | None
    days: list[ServiceDay]


RANGE_400 = problem(
    "a malformed date (not YYYY-MM-DD), an inverted range (from after to), a range over "
    f"{STATS_MAX_RANGE_DAYS} days, a day in the future, or one older than the {STATS_HISTORY_DAYS} days kept"
)

#: The parameters of both routes, as /docs shows them. The routes read them from the request
#: themselves: FastAPI's per-parameter dependency solving cost more than the rest of a statistics
#: request (docs/benchmarks.md, "bench-stats"), and these are two dates and a key.
PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "from",
        "in": "query",
        "required": False,
        "description": f"first day (UTC, YYYY-MM-DD); default: {DEFAULT_DAYS - 1} days before `to`",
        "schema": {"type": "string", "format": "date"},
    },
    {
        "name": "to",
        "in": "query",
        "required": False,
        "description": "last day (UTC, YYYY-MM-DD), at most today; default: today",
        "schema": {"type": "string", "format": "date"},
    },
    {"name": "X-API-Key", "in": "header", "required": True, "schema": {"type": "string"}},
]

router = APIRouter(prefix="/v1/stats", tags=["statistics"])


def api_key(request: Request) -> str:
    return request.headers.get("x-api-key") or ""


def client_of_key(request: Request) -> str:
    client = request.app.state.settings.api_keys.get(api_key(request))
    if client is None:
        raise HTTPException(401, "missing or invalid X-API-Key header")
    return client


def operator_of_key(request: Request) -> str:
    """The operator an API key belongs to: a client's key is a 403, a missing or unknown one a 401."""
    settings = request.app.state.settings
    key = api_key(request)
    operator = settings.operator_keys.get(key)
    if operator is not None:
        return operator
    if key in settings.api_keys:
        raise HTTPException(403, "service statistics need an operator key; this is a client's key")
    raise HTTPException(401, "missing or invalid X-API-Key header")


def checked_range(request: Request) -> DayRange:
    query = request.query_params
    try:
        return day_range(
            query.get("from"),
            query.get("to"),
            today=datetime.now(UTC).date(),
            max_days=STATS_MAX_RANGE_DAYS,
            history_days=STATS_HISTORY_DAYS,
        )
    except RangeRefused as exc:
        raise HTTPException(400, str(exc)) from None


def answers(request: Request) -> StatsAnswers:
    return request.app.state.stats.answers


def json_body(body: bytes) -> Response:
    return Response(body, media_type="application/json")


USAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "your uploads per day; an empty list before the first warehouse build"},
    400: RANGE_400,
    401: UNAUTHORIZED,
}
SERVICE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the service per day; an empty list before the first warehouse build"},
    400: RANGE_400,
    401: UNAUTHORIZED,
    403: problem("a client's API key: service statistics need an operator key"),
}
DOCUMENTED = {"openapi_extra": {"parameters": PARAMETERS}}


@get_and_head(router, "/usage", response_model=ClientUsage, responses=USAGE_RESPONSES, **DOCUMENTED)
async def client_usage(request: Request) -> Response:
    """Your own usage per day over a date range: uploads, bytes, duplicates, failures and
    derivatives ready, with totals. Figures are those of the last warehouse build (`as_of`)."""
    client_id = client_of_key(request)
    days = checked_range(request)
    return json_body(answers(request).client_usage(client_id, days.first, days.last))


@get_and_head(router, "/service", response_model=ServiceStats, responses=SERVICE_RESPONSES, **DOCUMENTED)
async def service_stats(request: Request) -> Response:
    """The service per day (operator key): images, bytes, formats, duplicates, failures, processing
    latency p50/p95 and storage per zone. Figures are those of the last warehouse build (`as_of`)."""
    operator_of_key(request)
    days = checked_range(request)
    return json_body(answers(request).service(days.first, days.last))
