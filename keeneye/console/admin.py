"""The console's administration pages: access keys (create with a policy, the secret shown once; change a
policy; disable, enable, delete) and the retention purge (preview, then run). Only the server's own
(bootstrap) key administers: keys are not resources a policy can grant, as on the CLI
(``keeneye keys``, ``keeneye audit purge``), which acts on the same tables with the same audit records."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from keeneye.console import session as sessions
from keeneye.console.web import blocking, form_of, guarded, render, see_other, text_of
from keeneye.core.errors import AccessDenied, BackendUnavailable, InvalidParameter
from keeneye.service.governance.keys import AccessKeys

router = APIRouter(prefix=sessions.PATH, include_in_schema=False)

# Policies an administrator starts from (edited as JSON before the key is made).
PRESETS: dict[str, dict[str, Any]] = {
    "read-only": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "rekognition:Describe*",
                    "rekognition:List*",
                    "rekognition:Search*",
                    "keeneye:List*",
                ],
                "Resource": "*",
            }
        ],
    },
    "reviewer": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "rekognition:Describe*",
                    "rekognition:List*",
                    "keeneye:ListIdentifications",
                    "keeneye:ReviewIdentification",
                ],
                "Resource": "*",
            }
        ],
    },
    "operator": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "rekognition:*",
                    "keeneye:ListIdentifications",
                    "keeneye:ReviewIdentification",
                    "keeneye:ListJobs",
                    "keeneye:ManageCameras",
                    "keeneye:UseCamera",
                    "keeneye:RedactImage",
                ],
                "Resource": "*",
            }
        ],
    },
    "auditor": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["keeneye:ReadAudit", "keeneye:List*"], "Resource": "*"}],
    },
}


def _admin(viewer: sessions.Viewer) -> None:
    if not viewer.principal.admin:
        raise AccessDenied(
            f"access key {viewer.access_key_id} ({viewer.principal.name}) is not an administrator key: only "
            "the server's own (bootstrap) key manages access keys and runs the purge"
        )


def _keys(request: Request) -> AccessKeys:
    """Key management on the server's store, auditing under the administrator (made once per app)."""
    state = request.app.state
    keys: AccessKeys | None = getattr(state, "console_keys", None)
    if keys is None:
        services = state.api.services
        if services.collections is None:
            raise BackendUnavailable("this server keeps no access keys (it has no database)")
        keys = AccessKeys(services.collections.store, state.api.settings.data_dir, services.audit)
        state.console_keys = keys
    return keys


def _policy(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise InvalidParameter(f"the policy is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise InvalidParameter(
            'the policy must be a JSON object such as {"Version": ..., "Statement": [...]}'
        )
    return value


async def _keys_page(request: Request, viewer: sessions.Viewer, status: int = 200, **extra: Any) -> Response:
    keys = await blocking(_keys(request).list)
    return render(
        request,
        "keys.html",
        viewer,
        status,
        keys=keys,
        presets={name: json.dumps(doc, indent=2) for name, doc in PRESETS.items()},
        **extra,
    )


@router.get("/keys", response_class=HTMLResponse)
async def keys_page(request: Request) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        _admin(viewer)
        return await _keys_page(request, viewer)

    return await guarded(request, page)


@router.post("/keys", response_class=HTMLResponse)
async def create_key(request: Request) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        _admin(viewer)
        name, policy = text_of(form, "key_name"), _policy(text_of(form, "policy"))
        info, pair = await blocking(lambda: _keys(request).create(name, policy, actor=viewer.access_key_id))
        # The secret is shown on this answer only (no-store), never again.
        return await _keys_page(request, viewer, created={"name": info.name, "pair": pair})

    return await guarded(request, act)


@router.post("/keys/{name}/policy", response_class=HTMLResponse)
async def set_policy(request: Request, name: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        _admin(viewer)
        policy = _policy(text_of(form, "policy"))
        if policy is None:
            raise InvalidParameter(
                "give the new policy (a key with no policy may do nothing: disable it instead)"
            )
        await blocking(lambda: _keys(request).set_policy(name, policy, actor=viewer.access_key_id))
        return see_other("/keys")

    return await guarded(request, act)


@router.post("/keys/{name}/enabled", response_class=HTMLResponse)
async def set_enabled(request: Request, name: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        _admin(viewer)
        enabled = text_of(form, "enabled") == "true"
        await blocking(lambda: _keys(request).set_enabled(name, enabled, actor=viewer.access_key_id))
        return see_other("/keys")

    return await guarded(request, act)


@router.post("/keys/{name}/delete", response_class=HTMLResponse)
async def delete_key(request: Request, name: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        await form_of(request, viewer)
        _admin(viewer)
        await blocking(lambda: _keys(request).delete(name, actor=viewer.access_key_id))
        return see_other("/keys")

    return await guarded(request, act)


@router.post("/purge", response_class=HTMLResponse)
async def purge(request: Request) -> Response:
    """The retention purge: ``dry_run`` shows what it would delete; otherwise it deletes (audited)."""

    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        _admin(viewer)
        retention = request.app.state.api.services.retention
        if retention is None:
            raise BackendUnavailable("this server has no retention service (no database)")
        dry_run = text_of(form, "dry_run") == "true"
        report = await blocking(lambda: retention.purge(dry_run=dry_run, access_key=viewer.access_key_id))
        return await _keys_page(request, viewer, purge=report.to_dict())

    return await guarded(request, act)
