"""How a request reaches its route: HEAD is answered by GET's handler, a 405 names every method
the path answers, and one trailing slash is dropped instead of redirected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send


def get_and_head(
    router: APIRouter, path: str, **kwargs: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Route GET ``path``, and HEAD to the same handler: the same status and headers, and the
    server sends no body. HEAD stays out of the OpenAPI document (GET describes it)."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False, **kwargs)
        return router.get(path, **kwargs)(endpoint)

    return register


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """A 405 whose Allow header names every method the path answers.

    GET and HEAD are separate routes (see :func:`get_and_head`), and the router's 405 names only
    the methods of the first route whose path matched (HEAD alone): the methods of every
    route matching the path are gathered here instead, in a stable (sorted) order. The app's
    routes are walked through ``iter_route_contexts``, as an included router is one node of
    ``app.router.routes`` that hides its own routes."""
    allowed = sorted(
        {
            method
            for route in iter_route_contexts(request.app.router.routes)
            if route.matches(request.scope)[0] is not Match.NONE
            for method in route.methods or ()
        }
    )
    if not allowed and isinstance(exc, StarletteHTTPException) and exc.headers:
        allowed = [m.strip() for m in exc.headers.get("Allow", "").split(",") if m.strip()]
    return JSONResponse(
        {"detail": f"{request.method} is not allowed here: use {' or '.join(allowed)}"},
        status_code=405,
        headers={"Allow": ", ".join(allowed)},
    )


class TrailingSlashTolerant:
    """Serve ``/v1/images/`` as ``/v1/images`` (one trailing slash dropped before routing).

    Starlette's default answers such a path with a 307 redirect and an empty
    body: a client that does not follow redirects (curl without ``-L``, most
    HTTP libraries for a POST) gets no message at all, and one that does sends
    the whole upload twice. The slash names the same resource, so a client
    expects the same answer, not an error: the request is served as is.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(path := scope["path"]) > 1 and path.endswith("/"):
            scope = {**scope, "path": path[:-1]}
            raw = scope.get("raw_path")
            if isinstance(raw, bytes) and raw.endswith(b"/"):
                scope["raw_path"] = raw[:-1]
        await self.app(scope, receive, send)
