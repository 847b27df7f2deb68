"""``GET /v1/stats/usage`` (a client's own usage) and ``GET /v1/stats/service`` (an operator's view).

Both answer from the statistics snapshot the replica holds in memory (imagelake/stats/), never
from the warehouse: fresh within the refresh interval, and never waiting for a build. The client
is the API key's: no parameter names another client, so none can show another client's figures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from imagelake.api.dependencies import UNAUTHORIZED, AppSettings, ClientId
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
FROM = Query(
    alias="from",
    description=f"first day (UTC, YYYY-MM-DD); default: {DEFAULT_DAYS - 1} days before `to`",
)
TO = Query(alias="to", description="last day (UTC, YYYY-MM-DD), at most today; default: today")

router = APIRouter(prefix="/v1/stats", tags=["statistics"])


async def answers(request: Request) -> StatsAnswers:
    return request.app.state.stats.answers


async def operator_of(settings: AppSettings, x_api_key: str | None = Header(default=None)) -> str:
    """The operator an API key belongs to: a client's key is a 403, a missing or unknown one a 401."""
    operator = settings.operator_keys.get(x_api_key or "")
    if operator is not None:
        return operator
    if (x_api_key or "") in settings.api_keys:
        raise HTTPException(403, "service statistics need an operator key; this is a client's key")
    raise HTTPException(401, "missing or invalid X-API-Key header")


def checked_range(first: str | None, last: str | None) -> DayRange:
    try:
        return day_range(
            first,
            last,
            today=datetime.now(UTC).date(),
            max_days=STATS_MAX_RANGE_DAYS,
            history_days=STATS_HISTORY_DAYS,
        )
    except RangeRefused as exc:
        raise HTTPException(400, str(exc)) from None


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


@get_and_head(router, "/usage", response_model=ClientUsage, responses=USAGE_RESPONSES)
async def client_usage(
    client_id: ClientId,
    stats: Annotated[StatsAnswers, Depends(answers)],
    first: Annotated[str | None, FROM] = None,
    last: Annotated[str | None, TO] = None,
) -> Response:
    """Your own usage per day over a date range: uploads, bytes, duplicates, failures and
    derivatives ready, with totals. Figures are those of the last warehouse build (`as_of`)."""
    days = checked_range(first, last)
    return json_body(stats.client_usage(client_id, days.first, days.last))


@get_and_head(router, "/service", response_model=ServiceStats, responses=SERVICE_RESPONSES)
async def service_stats(
    operator: Annotated[str, Depends(operator_of)],
    stats: Annotated[StatsAnswers, Depends(answers)],
    first: Annotated[str | None, FROM] = None,
    last: Annotated[str | None, TO] = None,
) -> Response:
    """The service per day (operator key): images, bytes, formats, duplicates, failures, processing
    latency p50/p95 and storage per zone. Figures are those of the last warehouse build (`as_of`)."""
    days = checked_range(first, last)
    return json_body(stats.service(days.first, days.last))
