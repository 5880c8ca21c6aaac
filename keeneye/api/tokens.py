"""Short-lived tokens of the native API (docs/security.md, "The native API's tokens").

``POST /v1/tokens`` gives a token that acts as the caller's access key for ``duration_s`` seconds
(``server.token_ttl_s`` when not given, at most ``server.token_max_ttl_s``), so that the secret access
key is sent once (or never: sign the request with SigV4) instead of with every request. Any
authenticated key may get one (it has exactly that key's rights), but not with a token: a token cannot
outlive itself. ``DELETE /v1/tokens`` ends the token the request shows. Issuing is logged (key and
expiry, never the token), not audited: the audit log records what was done to identities and keys.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response

from keeneye.api.deps import Caller, allowed, need
from keeneye.core.errors import AccessDenied, InvalidParameter

router = APIRouter()
log = logging.getLogger("keeneye.api")


@router.post(
    "/v1/tokens",
    summary="A short-lived token acting as the caller's access key (SigV4 or the secret, once)",
    description='Body (optional): {"duration_s": N}, seconds (60 to server.token_max_ttl_s; default '
    "server.token_ttl_s). Answers token, token_type (Bearer), access_key_id, expires_at and "
    "expires_in_s; send it as `Authorization: Bearer <token>`. It stops working when it expires and when "
    "its key is disabled or deleted. A request authenticated with a token is refused (403).",
)
def create_token(caller: Caller = allowed(None)) -> dict[str, Any]:
    if caller.principal.by_token:
        raise AccessDenied(
            "a token cannot be used to get another: sign the request with SigV4, or send the secret access "
            "key as the Bearer token once"
        )
    server = caller.state.settings.server
    spec = caller.json('{"duration_s": 900}') if caller.body.strip() else {}
    if not set(spec) <= {"duration_s"}:
        raise InvalidParameter('the body must be {"duration_s": N} or empty')
    duration = spec.get("duration_s", min(server.token_ttl_s, server.token_max_ttl_s))
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise InvalidParameter("duration_s must be a number of seconds")
    if not 60 <= duration <= server.token_max_ttl_s:
        raise InvalidParameter(f"duration_s must be between 60 and {server.token_max_ttl_s:g} seconds")
    tokens = need(caller.state.gate.keys.tokens, "tokens")
    issued = tokens.issue_token(caller.access_key_id, float(duration))
    expires = issued.expires_at.isoformat().replace("+00:00", "Z")
    log.info(
        "token issued for access key %s (%s), valid until %s",
        caller.access_key_id,
        caller.principal.name,
        expires,
    )
    return {
        "token": issued.token,
        "token_type": "Bearer",
        "access_key_id": issued.access_key_id,
        "expires_at": expires,
        "expires_in_s": int(duration),
    }


@router.delete(
    "/v1/tokens",
    status_code=204,
    summary="End the token this request shows (a client done with it)",
    description="Authenticated with the token itself (`Authorization: Bearer <token>`); 204. A request "
    "not authenticated with a token is a 400.",
)
def delete_token(request: Request, caller: Caller = allowed(None)) -> Response:
    if not caller.principal.by_token:
        raise InvalidParameter("show the token to end as `Authorization: Bearer <token>`")
    tokens = need(caller.state.gate.keys.tokens, "tokens")
    tokens.revoke_token(request.headers.get("authorization", "")[7:].strip())
    return Response(status_code=204)
