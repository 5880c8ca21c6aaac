"""Who is signed in to the console, and the checks every console request passes.

A console session is a native-API token (keeneye.service.governance.tokens: 256 random bits, only its
SHA-256 stored) issued to the access key that signed in, lasting ``server.console_session_s``. The
browser holds it in the ``keeneye_console`` cookie: HttpOnly (no script reads it), SameSite=Strict (no
other site's page sends it), Path=/console, Secure when the request came over HTTPS. Signing out revokes
the token, so an old cookie stops working at once; disabling or deleting the key ends its sessions too
(the key ring resolves the key at every use).

Every change is a POST carrying ``csrf_token``: an HMAC of the session token, which only a page of this
origin can know (the cookie is HttpOnly and the value is rendered into our own pages), checked in
constant time; a POST whose Origin header names another origin is refused as well. The sign-in form,
before there is a session, carries a double-submit value (a random cookie echoed in the form).

Every page and action passes the same gate as the APIs: the key's rate limit, then its policy for the
action on the resource (keeneye.auth.gate); changes are audited under the key. A key without a right
sees the page with the action disabled (:meth:`Viewer.can`), and the server refuses it anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from keeneye.api.deps import ApiState, client_address, state_of
from keeneye.auth.errors import AuthError
from keeneye.auth.keyring import Principal
from keeneye.core.errors import AccessDenied

COOKIE = "keeneye_console"
SIGN_IN_COOKIE = "keeneye_console_sign_in"
PATH = "/console"
CSRF_FIELD = "csrf_token"


class NotSignedIn(Exception):
    """No valid session: the console answers with the sign-in page (a redirect for a GET)."""


class ForgedRequest(Exception):
    """A change without this session's CSRF token, or from another origin (HTTP 403)."""


def csrf_for(token: str) -> str:
    """The CSRF value of a session: HMAC-SHA256 keyed by the session token (never the token itself)."""
    return hmac.new(token.encode(), b"keeneye-console-csrf", hashlib.sha256).hexdigest()


def new_sign_in_nonce() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Viewer:
    """The signed-in key of one console request: what it may do, and how its changes are audited."""

    principal: Principal
    token: str
    state: ApiState

    @property
    def access_key_id(self) -> str:
        return self.principal.access_key_id

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)

    def can(self, action: str, resource: str | None = None) -> bool:
        """Whether the key's policy allows ``action`` (on ``resource``; on some resource when None):
        what the pages use to show an action enabled or disabled."""
        if resource is None:
            return self.principal.may_ever(action)
        return bool(self.principal.decide(action, resource))

    def require(self, action: str, resource: str, where: str) -> None:
        """AccessDenied (logged) unless the key may ``action`` on ``resource``."""
        self.state.gate.authorize(self.principal, action, resource, where=f"console {where}")

    def audit(self, operation: str, details: dict[str, Any], collection_id: str | None = None) -> None:
        trail = self.state.services.audit
        if trail is not None:
            trail.append(
                operation, access_key=self.access_key_id, collection_id=collection_id, details=details
            )


def viewer_of(request: Request) -> Viewer:
    """The signed-in viewer (NotSignedIn otherwise), within its key's rate limit."""
    state = state_of(request)
    token = request.cookies.get(COOKIE, "")
    if not token:
        raise NotSignedIn()
    try:
        principal = state.gate.bearer(token) if token.startswith("ket_") else None
    except AuthError:
        principal = None
    if principal is None:
        raise NotSignedIn()
    state.gate.throttle(principal)
    return Viewer(principal, token, state)


def check_origin(request: Request) -> None:
    """A POST must come from this origin when the browser says where it comes from (all do)."""
    origin = request.headers.get("origin")
    if origin is None:  # a browser that sends none; SameSite=Strict and the CSRF value still hold
        return
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != expected:
        raise ForgedRequest("this request came from another site's page")


def check_csrf(request: Request, viewer: Viewer, form: Any) -> None:
    """ForgedRequest unless the form carries this session's CSRF value (and the Origin is ours)."""
    check_origin(request)
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
        raise ForgedRequest("the form's CSRF token is missing or stale: reload the page and try again")


def sign_in(request: Request, access_key_id: str, secret: str) -> tuple[Principal, str]:
    """Check a key pair (failed attempts counted per client address and key, as for the APIs) and
    issue a session token; AuthError with one message for an unknown key or a wrong secret."""
    state = state_of(request)
    gate = state.gate
    source = client_address(request)
    failures = gate.failures
    if failures is not None:
        failures.check(source, access_key_id or None)
    found = gate.keys.resolve(access_key_id) if access_key_id else None
    expected = found[0] if found is not None else secrets.token_hex(20)  # same work for unknown keys
    good = hmac.compare_digest(expected.encode(), secret.encode()) and found is not None
    if not good or found is None:
        if failures is not None:
            failures.failed(source, access_key_id or None)
        raise AuthError("UnrecognizedClientException", "unknown access key id or wrong secret access key")
    tokens = gate.keys.tokens
    if tokens is None:
        raise AccessDenied("this server keeps no sessions (it has no database): the console needs one")
    issued = tokens.issue_token(found[1].access_key_id, float(state.settings.server.console_session_s))
    return found[1], issued.token


def sign_out(viewer: Viewer) -> None:
    tokens = viewer.state.gate.keys.tokens
    if tokens is not None:
        tokens.revoke_token(viewer.token)
