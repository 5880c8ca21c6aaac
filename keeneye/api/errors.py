"""The native API's errors, in one place: ``{"error": {"code", "message"}}`` with an HTTP status.

keeneye's errors (keeneye.core.errors) by their stable ``code``; authentication failures (401, with
AWS's SigV4 names as the code), rate limits (429 with ``Retry-After``) and request validation (400
InvalidParameter, instead of FastAPI's 422). A client that goes away before its body arrived is
one log line, not a traceback (it happens whenever a client gives up; nothing failed here). Anything
else is a server error (500), logged by the server, its text never sent.
"""

from __future__ import annotations

import logging
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from keeneye.auth.errors import AuthError, Throttled
from keeneye.auth.ratelimit import retry_after_s
from keeneye.core.errors import KeeneyeError

log = logging.getLogger("keeneye.api")

# keeneye error code -> HTTP status (anything else: 400).
STATUS: Final[dict[str, int]] = {
    "NotFound": 404,
    "InvalidParameter": 400,
    "InvalidPaginationToken": 400,
    "Conflict": 409,
    "IdempotentParameterMismatch": 409,
    "BackendUnavailable": 503,
    "AccessDenied": 403,
    "Throttling": 429,  # ServerBusy: the server-wide budgets (pixels, bodies, requests in flight)
}
BUSY_RETRY_AFTER_S = 1  # what a 429 for a busy server (not a key's rate limit) suggests


def error_response(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every native route's errors in the one shape (the AWS endpoint answers its own)."""

    @app.exception_handler(KeeneyeError)
    async def keeneye_error(_: Request, exc: KeeneyeError) -> Response:
        response = error_response(exc.code, exc.message, STATUS.get(exc.code, 400))
        if response.status_code == 429:
            response.headers["Retry-After"] = str(BUSY_RETRY_AFTER_S)
        return response

    @app.exception_handler(ClientDisconnect)
    async def client_went_away(request: Request, _: ClientDisconnect) -> Response:
        # Raised by request.body() (keeneye.api.deps.allowed) when the client disconnects mid-body.
        log.info("%s %s: the client went away before sending its body", request.method, request.url.path)
        return Response(status_code=400)  # nobody is left to read it

    @app.exception_handler(AuthError)
    async def not_authenticated(_: Request, exc: AuthError) -> Response:
        return error_response(exc.type_name, exc.message, 401)

    @app.exception_handler(Throttled)
    async def throttled(_: Request, exc: Throttled) -> Response:
        response = error_response("Throttling", exc.message, 429)
        response.headers["Retry-After"] = str(retry_after_s(exc.wait_s))
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith("/v1/"):
            return await request_validation_exception_handler(request, exc)
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return error_response("InvalidParameter", "; ".join(problems), 400)
