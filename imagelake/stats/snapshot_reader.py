"""Keeping a replica's statistics current: the newest good snapshot in the lake, or the last one.

An API replica polls the manifest (one small GET) and loads a generation it has not loaded yet.
A damaged generation is never served: the replica keeps the answers it has, or, starting with
none, falls back on the older generations the manifest lists; a damaged generation is tried
again after a back-off, in case the damage was a failed read. Before any warehouse build has
published, the answers are empty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from imagelake.lake.store import Lake
from imagelake.stats.answers import SnapshotIncompatible, StatsAnswers, served_rows
from imagelake.stats.snapshot_files import Generation, SnapshotDamaged, load_generation, read_manifest

#: A generation that failed to load is tried again after this long, then twice as long, up to the cap.
RETRY_FIRST_S = 5.0
RETRY_MAX_S = 300.0


@dataclass
class PollOutcome:
    """What one poll did: the generation it loaded (if any) and each failure, described."""

    loaded: Generation | None = None
    failures: list[str] = field(default_factory=list)
    no_snapshot: bool = False


@dataclass
class _Retry:
    due: float
    wait_s: float


class SnapshotReader:
    """The answers of the newest snapshot that loaded; :meth:`poll` never raises for a bad snapshot."""

    def __init__(self, lake: Lake, clock=time.monotonic) -> None:
        self.lake = lake
        self.answers = StatsAnswers.empty()
        self._clock = clock
        self._retries: dict[str, _Retry] = {}

    def poll(self) -> PollOutcome:
        outcome = PollOutcome()
        try:
            manifest = read_manifest(self.lake)
        except SnapshotDamaged as exc:
            outcome.failures.append(str(exc))
            return outcome
        if manifest is None or not manifest.generations:
            outcome.no_snapshot = True
            return outcome
        for generation in manifest.generations:
            if generation.id == self.answers.generation:
                return outcome  # the newest loadable is what we serve
            if self._waiting(generation.id):
                continue
            try:
                tables = load_generation(self.lake, generation)
                rows = served_rows(tables)
            except (SnapshotDamaged, SnapshotIncompatible) as exc:
                outcome.failures.append(f"generation {generation.id}: {exc}")
                self._failed(generation.id)
                if self.answers.generation:
                    return outcome  # keep serving the last good one rather than an older one
                continue
            self.answers = StatsAnswers(
                rows["client_usage"], rows["service_daily"], generation.published_at, generation.id
            )
            self._retries.pop(generation.id, None)
            outcome.loaded = generation
            return outcome
        return outcome

    def _waiting(self, generation_id: str) -> bool:
        retry = self._retries.get(generation_id)
        return retry is not None and self._clock() < retry.due

    def _failed(self, generation_id: str) -> None:
        previous = self._retries.get(generation_id)
        wait_s = RETRY_FIRST_S if previous is None else min(previous.wait_s * 2, RETRY_MAX_S)
        self._retries[generation_id] = _Retry(self._clock() + wait_s, wait_s)
