"""What the parameters of every Spark job share: a lake to open, and a trip through Pipes extras."""

from __future__ import annotations

import dataclasses
from typing import Any, Self, TypedDict

from imagelake.lake.store import Lake


class LakeLocation(TypedDict):
    """Where the lake is, as every job's parameters name it."""

    lake_url: str
    s3_endpoint: str
    region: str


class JobParams:
    """Mixin for a job's frozen dataclass of parameters (``lake_url``, ``s3_endpoint``, ``region``).

    Pipes extras are plain JSON: tuples travel as lists and come back as tuples.
    """

    lake_url: str
    s3_endpoint: str
    region: str

    def lake(self) -> Lake:
        return Lake(self.lake_url, self.s3_endpoint, self.region)

    def to_extras(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}

    @classmethod
    def from_extras(cls, extras: dict[str, Any]) -> Self:
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in extras.items() if k in fields}
        return cls(**values)
