"""The error body every route documents, so that /docs says what each refusal means."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Problem(BaseModel):
    """Every error the API answers: what went wrong and, where it can, what to do."""

    detail: str


def problem(description: str) -> dict[str, Any]:
    """One entry of a route's ``responses``: an error answered with a :class:`Problem` body."""
    return {"model": Problem, "description": description}
