"""A closed-loop HTTP/1.1 load generator: N clients, each on its own keep-alive connection, each
sending its next request as soon as the last answer is in.

Written on asyncio streams rather than an HTTP library so that the client costs a fraction of the
server it measures: both share this machine's cores, and a heavy client would be measured as a
slow server. It speaks just enough HTTP for the API under test: GET, Content-Length bodies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    #: The first few error descriptions (status and body, or the exception), to say what failed.
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile (0-100, nearest rank) of the answered requests, in milliseconds."""
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank] * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s else 0.0

    def note_error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _client(
    host: str, port: int, requests: Sequence[bytes], deadline: float, result: LoadResult, offset: int
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            request = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            try:
                writer.write(request)
                status, body = await _read_answer(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.note_error(repr(exc))
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            if status == 200:
                result.latencies_s.append(time.perf_counter() - started)
            else:
                result.note_error(f"{status} {body[:200]!r}")
    finally:
        writer.close()


def get_request(host: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one keep-alive GET."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def run_load(
    host: str, port: int, requests: Sequence[bytes], clients: int, duration_s: float
) -> LoadResult:
    """``clients`` connections sending ``requests`` round-robin for ``duration_s`` seconds."""
    result = LoadResult()
    started = time.perf_counter()
    deadline = started + duration_s
    await asyncio.gather(*(_client(host, port, requests, deadline, result, n) for n in range(clients)))
    result.elapsed_s = time.perf_counter() - started
    return result
