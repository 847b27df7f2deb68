"""One id per request, in every log line it causes, in its answer and in the catalog item it creates.

A client (or a proxy in front of the API) may send ``X-Request-ID``; a well-formed one is kept, so
one id follows a request across services, and anything else is replaced by a new id rather than
echoed into logs. The id travels in a context variable: log lines written while the request is
handled carry it without being passed it (imagelake/api/json_logs.py).
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
#: What an id sent by a client may look like to be kept: short, and safe in a log line or a header.
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{8,64}")

_current: ContextVar[str | None] = ContextVar("imagelake_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return _current.get()


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's own id if it sent a well-formed one, else a new one."""
    for name, value in headers:
        if name == _HEADER_KEY:
            text = value.decode("latin-1")
            if _WELL_FORMED.fullmatch(text):
                return text
    return uuid.uuid4().hex


class RequestIds:
    """Gives each HTTP request its id and answers it in the ``X-Request-ID`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])
        token = _current.set(request_id)
        header = (_HEADER_KEY, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
