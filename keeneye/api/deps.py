"""What every native route shares: the server's state and one dependency that lets a caller in.

A route declares what it does as a policy action (``keeneye:ListJobs``, ``rekognition:...``) and, where
it acts on one resource, how to name that resource from the request; :func:`allowed` then
authenticates the caller (``Bearer <secret>`` or SigV4 over the body), takes a token from the key's
rate-limit bucket and authorizes the action on the resource, all through keeneye.auth.gate, before the
route runs. No body byte is read before the headers pass (keeneye.auth.bodies): a Bearer caller is
authenticated and authorized before its body is read, a SigV4 caller's body is read under the
server-wide budget of unverified bytes. Routes are plain functions (FastAPI runs them in a worker
thread: the models are CPU-bound); their errors are mapped in keeneye.api.errors. A route that
analyses images takes one of the server's ``server.max_inflight`` slots with :func:`analysing`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.auth.bodies import read_signed
from keeneye.auth.gate import Gate
from keeneye.auth.keyring import Principal
from keeneye.config import Settings
from keeneye.core.errors import BackendUnavailable, InvalidParameter, ServerBusy
from keeneye.service.container import Services


@dataclass(frozen=True)
class ApiState:
    """The server's parts the routes use (``app.state.api``, set by the composition root)."""

    services: Services
    gate: Gate
    settings: Settings
    about: Callable[[], dict[str, Any]]  # GET /v1/health: version, AWS operations served, face model
    redaction_analyzer: Callable[[], FaceAnalyzer]  # POST /v1/redact's pipeline, built at first use
    # Requests analysed at once, shared with POST / (server.max_inflight); None: no cap.
    inflight: threading.BoundedSemaphore | None = None


@dataclass(frozen=True)
class Caller:
    """Who is calling (authenticated, authorized for the route's action) and the body they sent."""

    principal: Principal
    body: bytes
    state: ApiState

    @property
    def access_key_id(self) -> str:
        return self.principal.access_key_id

    @property
    def services(self) -> Services:
        return self.state.services

    def json(self, example: str) -> dict[str, Any]:
        """The body as a JSON object (InvalidParameter otherwise; ``example`` shows the shape)."""
        return json_object(self.body, example)

    def require(self, rights: Iterable[tuple[str, str]], where: str) -> None:
        """Each further (action, resource) the request needs beyond the route's own (AccessDenied on the
        first the caller's policy does not allow)."""
        for action, resource in rights:
            self.state.gate.authorize(self.principal, action, resource, where=where)

    def audit(self, operation: str, details: dict[str, Any], collection_id: str | None = None) -> None:
        """Audit a change made through the native API, under the caller's access key."""
        audit = self.services.audit
        if audit is not None:
            audit.append(
                operation, access_key=self.access_key_id, collection_id=collection_id, details=details
            )


ResourceOf = Callable[[Request, ApiState], str]
"""The resource a route acts on, from the request (its path parameters) and the server's state."""


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def allowed(action: str | None, resource: ResourceOf | None = None) -> Any:
    """A dependency giving the :class:`Caller` once authenticated (401), within its rate limit (429)
    and allowed ``action`` on the route's resource (403). The headers are checked before any body byte
    is read; a SigV4 signature covers the body, so a SigV4 caller's body is then read (within the
    server's body limits, keeneye.aws.body_limits, and its budget of unverified bytes) and verified,
    a Bearer caller's only once authorized."""

    async def caller(request: Request) -> Caller:
        state = state_of(request)
        with state.gate.attempt(client_address(request), request.headers):
            principal = state.gate.check_headers(request.headers, bearer=True)
            body = None
            if principal is None:  # SigV4: the signature covers the body
                principal, body = await _signed_caller(request, state.gate)
        state.gate.throttle(principal)
        if action is not None:  # None: any authenticated caller (POST /v1/tokens, for its own key)
            target = "*" if resource is None else resource(request, state)
            state.gate.authorize(principal, action, target, where=f"{request.method} {request.url.path}")
        if body is None:
            body = await request.body()
        return Caller(principal, body, state)

    return Depends(caller)


async def _signed_caller(request: Request, gate: Gate) -> tuple[Principal, bytes]:
    """The SigV4 caller and its body, read under ``gate.bodies`` until the signature is checked."""
    body, signed = await read_signed(request, gate.bodies)
    with body:
        return gate.authenticate(signed), body.data


@contextmanager
def analysing(state: ApiState) -> Iterator[None]:
    """Hold one of the server's ``server.max_inflight`` analysis slots (shared with ``POST /``) while a
    route analyses images; ServerBusy (HTTP 429) when all are taken."""
    if state.inflight is None:
        yield
        return
    if not state.inflight.acquire(blocking=False):
        raise ServerBusy("Rate exceeded: too many requests in flight; retry")
    try:
        yield
    finally:
        state.inflight.release()


def json_object(body: bytes, example: str) -> dict[str, Any]:
    """``body`` as a JSON object, else InvalidParameter naming the shape expected."""
    try:
        value = json.loads(body or b"null", parse_constant=_no_constant)
    except (ValueError, RecursionError):  # RecursionError: [[[[... nested past the parser's depth
        raise InvalidParameter("the body is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidParameter(f"the body must be a JSON object such as {example}")
    return value


def json_value(body: bytes) -> Any:
    """``body`` as any JSON value (InvalidParameter if it is not JSON)."""
    try:
        return json.loads(body or b"null", parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InvalidParameter("the body is not JSON") from None


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Python's parser takes them): a NaN setting would pass every
    range check and break every later response."""
    raise ValueError(f"{name} is not a JSON number")


def client_address(request: Request) -> str | None:
    """The client's address (what failed authentication attempts are counted against)."""
    return request.client.host if request.client is not None else None


def need(part: Any, what: str) -> Any:
    """``part`` of the services, or BackendUnavailable (503) when this server was built without it."""
    if part is None:
        raise BackendUnavailable(f"{what} are not available on this server")
    return part
