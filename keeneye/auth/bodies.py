"""Request bodies of callers not verified yet, held under one server-wide budget.

A SigV4 signature covers the body, so a server must read the body before it can check the signature.
Both adapters therefore check first what the headers alone can tell (keeneye.auth.gate
``Gate.check_headers``: the Authorization header's form, the date, an access key that exists and is
enabled; a Bearer token in full) and read no body byte before that passes; until then a connection
holds at most what the HTTP server buffers (uvicorn stops reading a connection past 64 KiB that the
app has not asked for). Past the headers, the body of a caller whose signature is not verified yet is
read under :attr:`Gate.bodies <keeneye.auth.gate.Gate.bodies>` (``server.max_unauthenticated_body_bytes``):
its declared ``Content-Length`` is taken before the first byte is read (a chunked body's bytes as they
come), and given back once the signature is checked, whatever its outcome. A request that does not fit
is refused with :class:`~keeneye.core.errors.ServerBusy` (ThrottlingException, HTTP 429 on ``/v1``) and
its connection closed, so an attacker who knows an access key id (not a secret: it is in logs and
policies) can make the server hold at most that budget, not 20 MiB per connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from types import TracebackType

from starlette.requests import Request

from keeneye.auth.sigv4 import SignedRequest, signed_request
from keeneye.core.budget import Budget
from keeneye.core.errors import ServerBusy


class UnverifiedBody:
    """A body read under ``budget``; :meth:`release` (or leaving the ``with`` block) gives its bytes
    back once the signature is checked. ``data``: the body."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.data = b""
        self._held = 0

    def hold(self, size: int) -> None:
        """Hold ``size`` bytes in all (taking what is not held yet), or raise ServerBusy."""
        more = size - self._held
        if more <= 0:
            return
        if not self.budget.take(more):
            raise ServerBusy(
                "too many request bodies are being received from callers not yet authenticated "
                f"({self.budget.capacity} bytes at once); retry"
            )
        self._held = size

    def release(self) -> None:
        """Give the bytes back (once; later calls do nothing)."""
        held, self._held = self._held, 0
        self.budget.give(held)

    def __enter__(self) -> UnverifiedBody:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


async def read_unverified(
    chunks: AsyncIterable[bytes], budget: Budget, declared: int | None
) -> UnverifiedBody:
    """Read a body whose ``Content-Length`` is ``declared`` (None: chunked) under ``budget``: the
    declared size is held before reading, any more as it arrives. On any error the bytes are given
    back; otherwise the caller releases them once the signature is checked."""
    body = UnverifiedBody(budget)
    try:
        body.hold(declared or 0)
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            body.hold(size)
            parts.append(chunk)
        body.data = b"".join(parts)
    except BaseException:
        body.release()
        raise
    return body


async def read_signed(request: Request, budget: Budget) -> tuple[UnverifiedBody, SignedRequest]:
    """Both adapters' way to read a SigV4 caller's body: :func:`read_unverified` under ``budget`` (its
    declared ``Content-Length`` taken first) and the request as the signature covers it. The caller
    releases the body (``with body:``) once the signature is checked."""
    body = await read_unverified(
        request.stream(), budget, content_length(request.headers.get("content-length"))
    )
    try:
        signed = signed_request(
            request.method,
            request.scope.get("raw_path") or request.url.path.encode(),
            request.scope.get("query_string", b""),
            request.headers.items(),
            body.data,
        )
    except BaseException:
        body.release()
        raise
    return body, signed


def content_length(value: str | None) -> int | None:
    """A ``Content-Length`` header's value as a number (None when absent or not a number: the HTTP
    server refuses a malformed one before the app sees the request)."""
    try:
        return None if value is None else max(0, int(value))
    except ValueError:
        return None
