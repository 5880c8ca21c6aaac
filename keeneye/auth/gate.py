"""The one gate every request passes, whichever API it speaks: authenticate, rate-limit, authorize.

* :meth:`Gate.verify` checks a SigV4 signature (keeneye.auth.sigv4) with the key ring (the bootstrap
  key or an enabled database key) and gives the principal and the region it signed for;
* :meth:`Gate.authenticate` is the native API's: ``Authorization: Bearer <secret access key>`` or a
  SigV4 signature;
* :meth:`Gate.throttle` takes a token from the key's bucket (``server.rate_limit_per_s``) or raises
  :class:`~keeneye.auth.errors.Throttled`;
* :meth:`Gate.authorize` evaluates the key's policy for an action on a resource, logs a refusal and
  raises :class:`~keeneye.core.errors.AccessDenied` with a message naming the key, action and resource.

The adapters (keeneye.aws.endpoint, keeneye.api.deps) call these in this order and map the errors to
their wire format; neither checks a signature or a policy itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from keeneye.auth import sigv4
from keeneye.auth.errors import AuthError, Throttled
from keeneye.auth.keyring import KeyRing, Principal
from keeneye.auth.ratelimit import RateLimiter
from keeneye.core.errors import AccessDenied

log = logging.getLogger("keeneye.auth")


class Gate:
    """Authentication, rate limits and authorization over one key ring (thread-safe)."""

    def __init__(
        self,
        keys: KeyRing,
        limiter: RateLimiter,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.keys = keys
        self.limiter = limiter
        self._clock = clock

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
        """A native API caller: ``Bearer <secret access key>`` or a SigV4 signature."""
        auth = signed.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            principal = self.keys.principal_for_secret(auth[7:].strip())
            if principal is None:
                raise AuthError("UnrecognizedClientException", "unknown bearer token")
            return principal
        return self.verify(signed)[0]

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
