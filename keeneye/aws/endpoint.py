"""``POST /``: Rekognition's API (AWS JSON 1.1, SigV4). Every request goes through the same steps, in this
order, so that nothing is done for a caller who is not authenticated and nothing is half-done for a bad
request:

1. refuse a body over ``server.max_body_bytes`` (from ``Content-Length`` before reading, else while
   reading the stream): ``RequestEntityTooLargeException`` (HTTP 413), or one not received within
   ``server.body_timeout_s``: ``RequestTimeoutException`` (HTTP 408); both for every route
   (keeneye.aws.body_limits; the connection is then closed);
2. check what the headers alone tell (the Authorization header's form, scope and date, an access key
   that exists and is enabled) before a byte of the body is read, then read the body under the
   server-wide budget of bytes from callers not verified yet (``server.max_unauthenticated_body_bytes``,
   else ``ThrottlingException``; keeneye.auth.bodies), verify the SigV4 signature over the raw body and
   give those bytes back, and take a token from the key's rate-limit bucket (keeneye.auth.gate; else
   ``ThrottlingException``);
3. resolve ``X-Amz-Target`` to a supported operation and check the content type;
4. parse and validate the JSON body against the service model (keeneye.aws.model), then authorize
   ``rekognition:<Operation>`` on its resource, named in the caller's region, and every further right
   the request needs (the S3 objects it reads, its notification channel, what a stream processor uses)
   (else ``AccessDeniedException``, logged; see docs/security.md);
5. admit at most ``server.max_inflight`` operations at once (else ``ThrottlingException``) and run the
   handler (keeneye.aws.handlers) in a worker thread (models are CPU-bound);
6. map any error in one place (keeneye.aws.errors); an unexpected one is logged with its traceback
   and answered ``InternalServerError`` without details.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from keeneye.auth.bodies import read_signed
from keeneye.auth.errors import Throttled
from keeneye.auth.gate import Gate, denied_message
from keeneye.auth.keyring import Principal
from keeneye.auth.sigv4 import SignedRequest
from keeneye.aws import errors as aws_errors
from keeneye.aws import model
from keeneye.aws.errors import AwsError
from keeneye.aws.handlers import OPERATIONS, Context, rights_needed
from keeneye.service.container import Services
from keeneye.service.governance.policies import resource_for
from keeneye.service.metrics import RequestMetrics

log = logging.getLogger("keeneye.aws")

CONTENT_TYPE = "application/x-amz-json-1.1"
_ACCEPTED_TYPES = ("application/x-amz-json-1.1", "application/x-amz-json-1.0", "application/json")


class AwsEndpoint:
    """The ``POST /`` route of one server: ``supported`` operations (those whose services it has),
    ``max_inflight`` analysed at once, counted in ``metrics``."""

    def __init__(
        self,
        services: Services,
        gate: Gate,
        *,
        supported: frozenset[str],
        max_body_bytes: int,
        max_inflight: int,
        metrics: RequestMetrics,
    ) -> None:
        self.services = services
        self.gate = gate
        self.supported = supported
        self.max_body_bytes = max_body_bytes
        self.inflight = threading.BoundedSemaphore(max_inflight)
        self.metrics = metrics

    async def __call__(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        seen: list[str] = []  # the operation, once the target is resolved (for logs and metrics)
        try:
            _check_length(request, self.max_body_bytes)
            # Failed authentications count against the client's address and the key id it names.
            with self.gate.attempt(request.client.host if request.client else None, request.headers):
                # No body byte is read for a caller whose headers already fail (in a worker thread:
                # the key's lookup may query the database).
                await run_in_threadpool(self.gate.check_headers, request.headers)
                body, signed = await read_signed(request, self.gate.bodies)
                with body:
                    # Hashing a 20 MB body would stall the event loop: in a worker thread.
                    principal, region = await run_in_threadpool(self.gate.verify, signed)
            result = await run_in_threadpool(self.dispatch, principal, region, signed, request_id, seen)
            response: Response = Response(
                json.dumps(result), media_type=CONTENT_TYPE, headers={"x-amzn-RequestId": request_id}
            )
        except ClientDisconnect:
            log.info("%s client went away before sending its request", request_id)
            return Response(status_code=400)
        except Exception as exc:  # the one top-level handler: every failure becomes an AWS error
            err = aws_errors.from_exception(exc)
            if err.type_name == "InternalServerError":
                log.error("request %s (%s) failed", request_id, seen[0] if seen else "unknown", exc_info=exc)
            response = _error_response(err, request_id)
        elapsed = time.perf_counter() - started
        op_name = seen[0] if seen else "unknown"
        self.metrics.observe(op_name, response.status_code, elapsed)
        log.info("%s %s %d %.1f ms", request_id, op_name, response.status_code, elapsed * 1000)
        return response

    def dispatch(
        self, principal: Principal, region: str, signed: SignedRequest, request_id: str, seen: list[str]
    ) -> dict[str, Any]:
        """Rate-limit, resolve, validate, authorize and run one call of an authenticated ``principal``
        signing for ``region`` (in a worker thread: parsing a 20 MB body, and the models, would
        otherwise stall the event loop)."""
        try:
            self.gate.throttle(principal)
        except Throttled as exc:
            raise AwsError("ThrottlingException", exc.message) from None
        operation = model.operation_for_target(
            signed.headers.get("x-amz-target"), self.supported, frozenset(OPERATIONS)
        )
        seen.append(operation.name)
        ctype = signed.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in _ACCEPTED_TYPES:
            raise AwsError("SerializationException", f"Content-Type must be {CONTENT_TYPE}")
        params = model.parse_input(operation, signed.body)
        ctx = Context(self.services, principal.access_key_id, request_id, principal.decide, region)
        self._authorize(principal, operation.name, params, ctx, self._arns_in(region))
        if not self.inflight.acquire(blocking=False):
            raise AwsError("ThrottlingException", "Rate exceeded: too many requests in flight; retry")
        try:
            return OPERATIONS[operation.name](ctx, params)
        finally:
            self.inflight.release()

    def _arns_in(self, region: str) -> Callable[[str], str]:
        """Collection ARNs as a caller signing for ``region`` names them (collections are regional)."""
        if self.services.collections is None:
            return lambda collection_id: collection_arn(collection_id, region)
        return self.services.collections.in_region(region).arn

    def _authorize(
        self,
        principal: Principal,
        operation: str,
        params: dict[str, Any],
        ctx: Context,
        arn_of: Callable[[str], str],
    ) -> None:
        """Raise AccessDeniedException unless ``principal`` may run ``operation`` on its resource and
        then hold every further right its request needs (keeneye.aws.handlers.rights_needed: the S3
        objects it reads, its notification channel, what a stream processor uses), in that order: the
        one place a Rekognition request's rights are checked.

        ListCollections is allowed when the policy allows it on any collection; the handler then lists
        only the collections it allows (Context.authorize)."""
        action = f"rekognition:{operation}"
        if operation == "ListCollections":
            if not principal.may_ever(action):
                self._refuse(principal, action, arn_of("*"), "no matching allow", ctx.request_id)
        else:
            self._require(principal, action, resource_for(params, arn_of), ctx.request_id)
            for right in rights_needed(ctx, operation, params):
                self._require(principal, right.action, right.resource, ctx.request_id)
        self.gate.keys.touch(principal)

    def _require(self, principal: Principal, action: str, resource: str, request_id: str) -> None:
        decision = principal.decide(action, resource)
        if not decision:
            self._refuse(principal, action, resource, decision.reason, request_id)

    @staticmethod
    def _refuse(principal: Principal, action: str, resource: str, reason: str, request_id: str) -> NoReturn:
        log.warning(
            "%s access denied: key %s (%s) %s on %s (%s)",
            request_id,
            principal.access_key_id,
            principal.name,
            action,
            resource,
            reason,
        )
        raise AwsError("AccessDeniedException", denied_message(principal, action, resource, reason))


def collection_arn(collection_id: str, region: str = "us-east-1") -> str:
    """A collection's ARN on a server without collections (FaceCollections.arn's default form)."""
    return f"arn:aws:rekognition:{region}:000000000000:collection/{collection_id}"


def _error_response(err: AwsError, request_id: str) -> Response:
    return Response(
        json.dumps(err.body()),
        status_code=err.status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )


def _check_length(request: Request, limit: int) -> None:
    """RequestEntityTooLargeException from a declared ``Content-Length`` over ``limit`` (a body that
    grows past it while streaming is cut by keeneye.aws.body_limits)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise AwsError(
                    "RequestEntityTooLargeException", f"the request body is larger than {limit} bytes"
                )
        except ValueError:
            raise AwsError("SerializationException", "invalid Content-Length") from None
