"""The one gate every request passes, whichever API it speaks: authenticate, rate-limit, authorize.

* :meth:`Gate.verify` checks a SigV4 signature (keeneye.auth.sigv4) with the key ring (the bootstrap
  key or an enabled database key) and gives the principal and the region it signed for;
* :meth:`Gate.authenticate` is the native API's: ``Authorization: Bearer <secret access key>`` or a
  SigV4 signature;
* :meth:`Gate.check_headers` is what both adapters ask before they read a body: a Bearer token in full,
  a SigV4 header's form, scope, date and access key (known and enabled); the signature covers the
  body, so it is checked once the body is read, under :attr:`Gate.bodies` (the bytes held at once for
  callers not yet verified);
* :meth:`Gate.bearer` is a Bearer value: a native-API token (``ket_...``, ``POST /v1/tokens``), or the
  secret access key itself unless ``server.bearer_secret`` is off;
* :meth:`Gate.attempt` surrounds an authentication: refused with Throttled while the client address's
  or the named key's failed attempts are used up (keeneye.auth.failures), and counting a failure;
* :meth:`Gate.throttle` takes a token from the key's bucket (``server.rate_limit_per_s``) or raises
  :class:`~keeneye.auth.errors.Throttled`;
* :meth:`Gate.authorize` evaluates the key's policy for an action on a resource, logs a refusal and
  raises :class:`~keeneye.core.errors.AccessDenied` with a message naming the key, action and resource.

The adapters (keeneye.aws.endpoint, keeneye.api.deps) call these in this order and map the errors to
their wire format; neither checks a signature or a policy itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

from keeneye.auth import sigv4
from keeneye.auth.errors import AuthError, Throttled
from keeneye.auth.failures import FailureLimiter, claimed_key
from keeneye.auth.keyring import KeyRing, Principal
from keeneye.auth.ratelimit import RateLimiter
from keeneye.config import ServerSettings
from keeneye.core.budget import Budget
from keeneye.core.errors import AccessDenied
from keeneye.service.governance.tokens import is_token

log = logging.getLogger("keeneye.auth")

DEFAULT_UNVERIFIED_BODY_BYTES: int = ServerSettings.model_fields["max_unauthenticated_body_bytes"].default


class Gate:
    """Authentication, rate limits and authorization over one key ring (thread-safe)."""

    def __init__(
        self,
        keys: KeyRing,
        limiter: RateLimiter,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        bodies: Budget | None = None,
        failures: FailureLimiter | None = None,
        bearer_secrets: bool = True,
    ) -> None:
        self.keys = keys
        self.limiter = limiter
        self._clock = clock
        # Failed attempts per client address and key (None: not limited; the server sets its settings').
        self.failures = failures
        self.bearer_secrets = bearer_secrets  # server.bearer_secret: the secret itself as a Bearer token
        # Body bytes of callers whose signature is not verified yet, server-wide (the adapters read
        # under it: keeneye.auth.bodies).
        self.bodies = bodies or Budget(DEFAULT_UNVERIFIED_BODY_BYTES, "body bytes")

    def verify(self, signed: sigv4.SignedRequest) -> tuple[Principal, str]:
        """The principal who signed ``signed`` and the region it signed for; AuthError otherwise."""
        found: list[Principal] = []

        def secret_for(access_key_id: str) -> str | None:
            resolved = self.keys.resolve(access_key_id)
            if resolved is None:
                return None
            found.append(resolved[1])
            return resolved[0]

        caller = sigv4.verify(signed, secret_for, now=self._clock())
        return found[-1], caller.region

    def authenticate(self, signed: sigv4.SignedRequest) -> Principal:
        """A native API caller: a Bearer value (:meth:`bearer`) or a SigV4 signature."""
        auth = signed.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return self.bearer(auth[7:].strip())
        return self.verify(signed)[0]

    def check_headers(self, headers: Mapping[str, str], *, bearer: bool = False) -> Principal | None:
        """What can be checked before the body is read (AuthError otherwise). With ``bearer`` (the
        native API), a Bearer token is checked in full and its principal returned. A SigV4 header is
        checked for its form, scope, signed headers, date and session token (keeneye.auth.sigv4
        check_headers), and its access key must be known and enabled; None then: the signature, over
        the body, is :meth:`verify`'s (or :meth:`authenticate`'s) once the body is read."""
        auth = headers.get("authorization", "")
        if bearer and auth.lower().startswith("bearer "):
            return self.bearer(auth[7:].strip())
        credential = sigv4.check_headers(headers, now=self._clock())
        if self.keys.resolve(credential.access_key_id) is None:
            raise AuthError("UnrecognizedClientException", sigv4.UNKNOWN_KEY)
        return None

    def bearer(self, value: str) -> Principal:
        """The principal of a native-API Bearer value: a token, or (when allowed) a secret access key."""
        if is_token(value):
            principal = self.keys.principal_for_token(value)
            if principal is None:
                raise AuthError("UnrecognizedClientException", "unknown or expired token")
            return principal
        if not self.bearer_secrets:
            raise AuthError(
                "UnrecognizedClientException",
                "a secret access key is not taken as a Bearer token here: get a token from POST /v1/tokens "
                "(signed with SigV4) and send that",
            )
        principal = self.keys.principal_for_secret(value)
        if principal is None:
            raise AuthError("UnrecognizedClientException", "unknown bearer token")
        return principal

    @contextmanager
    def attempt(self, source: str | None, headers: Mapping[str, str]) -> Iterator[None]:
        """Around one authentication of a request from ``source`` (the client's address): Throttled
        before anything is checked while its failures, or those of the access key id its SigV4
        header names, are used up; an AuthError inside counts against both."""
        if self.failures is None:
            yield
            return
        access_key_id = claimed_key(headers.get("authorization"))
        self.failures.check(source, access_key_id)
        try:
            yield
        except AuthError:
            self.failures.failed(source, access_key_id)
            raise

    def throttle(self, principal: Principal) -> None:
        """Take a request token from the principal's bucket, or raise Throttled."""
        wait_s = self.limiter.acquire(principal.access_key_id)
        if wait_s:
            raise Throttled(
                f"Rate exceeded for access key {principal.access_key_id}: {self.limiter.rate_per_s:g} "
                f"requests/s (bursts of {self.limiter.burst}); retry in {wait_s:.2f} s",
                wait_s,
            )

    def authorize(self, principal: Principal, action: str, resource: str, *, where: str = "") -> None:
        """Raise AccessDenied unless the principal's policy allows ``action`` on ``resource``; note the
        key's use. ``where``: what to add to the log line (the request)."""
        decision = principal.decide(action, resource)
        if not decision:
            self.refuse(principal, action, resource, decision.reason, where=where)
        self.keys.touch(principal)

    def refuse(
        self, principal: Principal, action: str, resource: str, reason: str, *, where: str = ""
    ) -> None:
        """Log and raise the AccessDenied of a decision already made (``reason``: the policy's)."""
        log.warning(
            "access denied: key %s (%s) %s on %s (%s)%s",
            principal.access_key_id,
            principal.name,
            action,
            resource,
            reason,
            f" at {where}" if where else "",
        )
        raise AccessDenied(denied_message(principal, action, resource, reason))


def denied_message(principal: Principal, action: str, resource: str, reason: str) -> str:
    why = (
        "with an explicit deny in its policy"
        if reason == "explicit deny"
        else f"because no statement of its policy allows the {action} action"
    )
    return (
        f"access key {principal.access_key_id} ({principal.name}) is not authorized to perform: "
        f"{action} on resource: {resource} {why}"
    )
