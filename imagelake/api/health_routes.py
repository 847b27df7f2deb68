"""``GET /healthz``: whether this process can still take uploads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from imagelake.api.dependencies import started_publisher
from imagelake.api.problems import problem
from imagelake.api.publisher import EventPublisher
from imagelake.api.routing import get_and_head

HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the API is up and its Kafka producer works"},
    503: problem("the Kafka producer failed for good: restart the API"),
}

router = APIRouter()


@get_and_head(router, "/healthz", responses=HEALTH_RESPONSES)
async def healthz(publisher: Annotated[EventPublisher | None, Depends(started_publisher)]) -> dict[str, str]:
    if publisher is not None and publisher.fatal_error:
        raise HTTPException(503, f"Kafka producer failed: {publisher.fatal_error}")
    return {"status": "ok"}
