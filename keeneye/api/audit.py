"""The audit log over HTTP (docs/accountability.md): ``GET /v1/audit`` (records) and ``GET
/v1/audit/verify`` (the hash chain, like ``keeneye audit verify``), both ``keeneye:ReadAudit``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from keeneye.api.deps import Caller, allowed, need

router = APIRouter()
READ_AUDIT = "keeneye:ReadAudit"


@router.get("/v1/audit", summary="Audit records of identity operations (authenticated)")
def read_audit(
    since: Annotated[datetime | None, Query(description="Only records at or after this ISO time")] = None,
    collection: Annotated[str | None, Query(description="Only records of this collection")] = None,
    caller: Caller = allowed(READ_AUDIT),
) -> dict[str, Any]:
    audit = caller.services.audit
    if audit is None:
        return {"records": []}
    return {"records": [dict(r) for r in audit.read(since=since, collection_id=collection)]}


@router.get(
    "/v1/audit/verify",
    summary="Verify the audit log's hash chain (authenticated)",
    description="Walks every record: its hash, its link to the one before, and the head anchor. "
    "Answers ok, records, first_id, last_id, last_hash, first_bad_id, problem, anchor and warnings; "
    "HTTP 200 either way (ok false names the first bad record).",
)
def verify_audit(caller: Caller = allowed(READ_AUDIT)) -> dict[str, Any]:
    audit = need(caller.services.audit, "audit records")
    report: dict[str, Any] = audit.verify().to_dict()
    return report
