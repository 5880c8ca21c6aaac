"""keeneye's web console (``/console``), served by ``keeneye serve`` itself: server-rendered Jinja2 pages
with one small script and one stylesheet, no CDN, nothing fetched at run time. It runs on the native
API's state (keeneye.api.deps.ApiState): the same services, the same gate, so every action obeys the
signed-in key's policy and is audited under it (keeneye.console.session). docs/console.md shows it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from keeneye.console import admin, pages, streams, tools
from keeneye.console.session import PATH
from keeneye.console.web import STATIC_DIR

# Pages may load only this server's scripts, styles and images; no page may be framed (clickjacking),
# and forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; media-src 'self' blob:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def mount(app: FastAPI) -> None:
    """Serve the console at /console on ``app`` (whose ``state.api`` the composition root sets)."""
    for router in (pages.router, streams.router, tools.router, admin.router):
        app.include_router(router)
    app.mount(f"{PATH}/static", StaticFiles(directory=STATIC_DIR), name="console-static")

    @app.middleware("http")
    async def console_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path == PATH or request.url.path.startswith(PATH + "/"):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response
