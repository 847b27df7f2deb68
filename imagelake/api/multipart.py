"""Streaming extraction of one file field from a multipart/form-data body, with a size cap.

The body is parsed as it arrives and the read stops the moment the cap is
passed: an oversized upload is refused without ever being buffered whole.

One request carries one file: the body is read to its end (within the same
cap) and a second part named like the file field is refused, never silently
dropped. Parts with other names are read past and ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

#: Room for the multipart envelope and small form fields on top of the file cap.
ENVELOPE_ALLOWANCE = 64 * 1024

#: The longest header line of one part (name and value), in bytes: python-multipart's own default,
#: so nothing accepted before is refused now. A 1000-character file name in any script (at most
#: 4 bytes a character in UTF-8) fits in its Content-Disposition. The parser's limit is set out of
#: reach so that this one, checked in the callbacks with a message a client can act on, is the one met.
MAX_PART_HEADER_BYTES = 4096 + 128
_PARSER_HEADER_LIMIT = 1 << 62


class BodyError(ValueError):
    """The request body cannot be accepted; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class UploadedFile:
    data: bytes
    sha256: str
    #: As sent by the client; informational only, never used in a key.
    filename: str | None
    #: The part was sent as a file (a filename or a Content-Type), not as a plain text value
    #: such as ``curl -F file=hello`` sends.
    is_file: bool = True


def not_a_file_upload(field: str) -> str:
    """The reason given when ``field`` held a text value where a file upload belongs."""
    return (
        f"the {field!r} field must be a file upload (for example curl -F {field}=@photo.jpg), "
        "not a text value"
    )


def _disposition(raw: bytes) -> tuple[str | None, str | None]:
    _, params = parse_options_header(raw)
    name = params.get(b"name")
    filename = params.get(b"filename")
    return (
        name.decode("utf-8", "replace") if name is not None else None,
        filename.decode("utf-8", "replace") if filename is not None else None,
    )


def more_than_one_file(field: str, parts: int) -> str:
    """The reason given when the body holds ``parts`` (more than one) parts named ``field``."""
    return (
        f"the body holds {parts} parts named {field!r}; send one file per request "
        f"(one -F {field}=@photo.jpg), and each further image in a request of its own: nothing was stored"
    )


def header_too_long(name: bytes) -> str:
    """The reason given when a part's header line ``name`` is over :data:`MAX_PART_HEADER_BYTES`."""
    header = name.decode("latin-1")[:40] or "a"
    return (
        f"the {header} header of a multipart part is longer than the {MAX_PART_HEADER_BYTES:,}-byte limit "
        "for one part header (usually a very long file name): send the file under a shorter name"
    )


async def read_file_field(
    chunks: AsyncIterator[bytes], content_type: str | None, field: str, max_bytes: int
) -> UploadedFile:
    """Read the one part named ``field`` out of a streamed multipart body.

    The whole body is read (within ``max_bytes`` plus :data:`ENVELOPE_ALLOWANCE`), so a second
    part named ``field`` is found and refused (400) instead of being silently dropped; other
    parts are ignored and never buffered."""
    mime, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise BodyError(400, f"send multipart/form-data with the image in a field named {field!r}")

    state: dict[str, Any] = {
        "header_field": b"",
        "header_value": b"",
        "headers": {},
        "in_file": False,
        "done": False,
    }
    #: Parts named ``field`` seen so far: only the first is read, a second one refuses the body.
    parts = [0]
    buffer = bytearray()
    digest = hashlib.sha256()
    filename: list[str | None] = [None]
    is_file = [True]

    def check_header_size() -> None:
        if len(state["header_field"]) + len(state["header_value"]) > MAX_PART_HEADER_BYTES:
            raise BodyError(400, header_too_long(state["header_field"]))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_field"] += data[start:end]
        check_header_size()

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] += data[start:end]
        check_header_size()

    def on_header_end() -> None:
        state["headers"][state["header_field"].lower()] = state["header_value"]
        state["header_field"], state["header_value"] = b"", b""

    def on_headers_finished() -> None:
        name, fname = _disposition(state["headers"].get(b"content-disposition", b""))
        if name == field:
            parts[0] += 1
        state["in_file"] = name == field and parts[0] == 1
        if state["in_file"]:
            filename[0] = fname
            is_file[0] = fname is not None or b"content-type" in state["headers"]

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if not state["in_file"]:
            return
        if len(buffer) + (end - start) > max_bytes:
            raise BodyError(413, f"the file is larger than the {max_bytes:,}-byte limit")
        buffer.extend(data[start:end])
        digest.update(data[start:end])

    def on_part_end() -> None:
        if state["in_file"]:
            state["done"] = True
        state["in_file"] = False
        state["headers"] = {}

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
        # Every header byte passes through the callbacks above, which hold them to
        # MAX_PART_HEADER_BYTES (at most one body chunk more is held before the check).
        max_header_size=_PARSER_HEADER_LIMIT,
    )
    total = 0
    body_cap = max_bytes + ENVELOPE_ALLOWANCE
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > body_cap:
                raise BodyError(413, f"the request body is larger than the {max_bytes:,}-byte limit")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise BodyError(400, f"malformed multipart body: {exc}") from None
    if state["in_file"]:
        raise BodyError(
            400,
            f"the body ended inside field {field!r}, before its closing boundary: the upload was cut short",
        )
    if not state["done"]:
        raise BodyError(400, f"no file in field {field!r}: send the image as multipart field {field!r}")
    if parts[0] > 1:
        raise BodyError(400, more_than_one_file(field, parts[0]))
    if not buffer:
        raise BodyError(
            400, f"the file in field {field!r} is empty" if is_file[0] else not_a_file_upload(field)
        )
    return UploadedFile(bytes(buffer), digest.hexdigest(), filename[0], is_file[0])
