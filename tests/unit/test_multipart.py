"""Reading the one file field out of a streamed multipart body (imagelake.api.multipart)."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from imagelake.api.multipart import BodyError, UploadedFile, read_file_field

BOUNDARY = "xyz"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def read(data: bytes, max_bytes: int = 1 << 20, chunk: int = 7) -> UploadedFile:
    """Parse ``data`` sent in small chunks, so every state of the parser meets a chunk edge."""

    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(data), chunk):
            yield data[at : at + chunk]

    return asyncio.run(read_file_field(chunks(), CONTENT_TYPE, "file", max_bytes))


def test_one_file_is_read_and_other_fields_are_ignored():
    upload = read(body(part("note", b"hello"), part("file", b"PNGDATA", "a.png"), part("tag", b"x")))
    assert (upload.data, upload.filename, upload.is_file) == (b"PNGDATA", "a.png", True)


@pytest.mark.parametrize(
    "second",
    [part("file", b"JPEGDATA", "b.jpg"), part("file", b"a text value")],
    ids=["second-file", "second-text-value"],
)
def test_a_second_part_in_the_file_field_is_refused_not_dropped(second):
    with pytest.raises(BodyError) as info:
        read(body(part("file", b"PNGDATA", "a.png"), part("note", b"hi"), second))
    assert info.value.status == 400
    assert "2 parts named 'file'" in info.value.reason
    assert "send one file per request" in info.value.reason


def test_the_rest_of_the_body_is_still_bounded_by_the_cap():
    """Reading on for a second file part must not read an unbounded body."""
    huge_tail = part("note", b"x" * 200_000)
    with pytest.raises(BodyError) as info:
        read(body(part("file", b"PNGDATA", "a.png"), huge_tail), max_bytes=1000, chunk=4096)
    assert info.value.status == 413


@pytest.mark.parametrize("char", ["é", "文", "\U0001f600"], ids=["2-byte", "3-byte", "4-byte"])
def test_a_1000_character_file_name_is_read_in_any_script(char):
    upload = read(body(part("file", b"PNGDATA", char * 1000)), chunk=4096)
    assert upload.filename == char * 1000


@pytest.mark.parametrize("chunk", [7, 65536], ids=["small-chunks", "one-chunk"])
def test_a_part_header_over_the_limit_is_named_with_the_limit(chunk):
    with pytest.raises(BodyError) as info:
        read(body(part("file", b"PNGDATA", "é" * 4000)), chunk=chunk)
    assert info.value.status == 400
    reason = info.value.reason
    assert "Content-Disposition header of a multipart part is longer than the 4,224-byte limit" in reason
    assert "shorter name" in reason and "Maximum header size" not in reason
