"""Request bodies under a size limit and a deadline, for every route (AWS JSON at ``POST /`` and /v1).

uvicorn reads a body only as fast as the client sends it and has no deadline of its own (its
``timeout_keep_alive`` counts only the idle time *between* requests), so a slow-loris client that
sends its body a byte at a time would hold its connection, and the memory of what it sent so far,
forever. :class:`BodyLimitMiddleware` wraps the ASGI ``receive`` of every HTTP request:

* a declared ``Content-Length`` over ``max_bytes`` is refused before anything is read, and a body
  that grows past it while streaming is refused at that point: ``RequestEntityTooLargeException``
  (HTTP 413);
* the whole body must arrive within ``timeout_s`` of the request's start, else
  ``RequestTimeoutException`` (HTTP 408, which botocore retries as a transient error);
* either way the answer carries ``Connection: close``, so the server drops the connection instead
  of reading the rest of the body; so does any answer sent before the body was read in full (a
  route that never reads it), which would otherwise keep reading a dripping body forever.

The errors are raised from ``receive`` as :class:`~keeneye.aws.errors.AwsError`: the AWS route maps
them like any other error; for the native API this middleware answers them itself, in the native
shape ``{"error": {"code", "message"}}``. Once the body is complete, ``receive`` is passed through
untouched (waiting for ``http.disconnect`` is not limited).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keeneye.aws.errors import AwsError

CONTENT_TYPE = "application/x-amz-json-1.1"


def too_large(limit: int) -> AwsError:
    return AwsError("RequestEntityTooLargeException", f"the request body is larger than {limit} bytes")


def too_slow(timeout_s: float) -> AwsError:
    return AwsError(
        "RequestTimeoutException", f"the request body was not received within {timeout_s:g} seconds"
    )


class BodyLimitMiddleware:
    """ASGI middleware: at most ``max_bytes`` of body per request, all of it within ``timeout_s``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        # The AWS route makes the same check itself, so that its metrics and log count the request.
        if declared is not None and declared > self.max_bytes and scope.get("path") != "/":
            await _answer(scope, send, too_large(self.max_bytes))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        has_body = (declared or 0) > 0 or _header(scope, b"transfer-encoding") is not None
        state = {"received": 0, "complete": False, "cut": False, "started": False}

        async def limited_receive() -> Message:
            if state["complete"]:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                state["cut"] = True
                raise too_slow(self.timeout_s) from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["cut"] = True
                    raise too_large(self.max_bytes)
                state["complete"] = not message.get("more_body", False)
            else:
                state["complete"] = True
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                # A body cut off, or one the route never read (GET /v1/health with a body dripping in):
                # the rest is not wanted, so the connection closes after this answer.
                if state["cut"] or (has_body and not state["complete"]):
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, closing_send)
        except AwsError as err:
            if state["started"] or err.type_name not in (
                "RequestTimeoutException",
                "RequestEntityTooLargeException",
            ):
                raise
            await _answer(scope, send, err)


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None  # the server has refused it already (h11); nothing to add


async def _answer(scope: Scope, send: Send, err: AwsError) -> None:
    """The error in the route's shape: AWS JSON 1.1 at ``/``, the native shape elsewhere."""
    headers: list[tuple[bytes, bytes]] = [(b"connection", b"close")]
    body: dict[str, Any]
    if scope.get("path") == "/":
        body = err.body()
        headers += [
            (b"content-type", CONTENT_TYPE.encode()),
            (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
        ]
    else:
        body = {"error": {"code": err.type_name, "message": err.message}}
        headers.append((b"content-type", b"application/json"))
    payload = json.dumps(body).encode()
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
