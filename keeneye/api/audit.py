"""The audit log over HTTP (docs/accountability.md): ``GET /v1/audit`` (records, a page at a time:
``limit``, ``order``, and the ``after`` cursor each page's ``next_after`` gives) and ``GET
/v1/audit/verify`` (the hash chain, like ``keeneye audit verify``), both ``keeneye:ReadAudit``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from keeneye.api.deps import Caller, allowed, need

router = APIRouter()
READ_AUDIT = "keeneye:ReadAudit"


PAGE_MAX = 1000


@router.get(
    "/v1/audit",
    summary="Audit records of identity operations, a page at a time (authenticated)",
    description="Oldest first (the order they were written), or newest first with order=newest. At most "
    "`limit` records a page; when there may be more, `next_after` is the cursor of the next page: send it "
    "back as `after` with the same filters and order (null on the last page). Records appended meanwhile "
    "come in later pages (oldest first) and never shift a page.",
)
def read_audit(
    since: Annotated[datetime | None, Query(description="Only records at or after this ISO time")] = None,
    collection: Annotated[str | None, Query(description="Only records of this collection")] = None,
    order: Annotated[
        Literal["oldest", "newest"], Query(description="oldest first (as written) or newest first")
    ] = "oldest",
    after: Annotated[
        int | None, Query(ge=0, description="The cursor: the previous page's next_after (a record id)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="At most this many records")] = PAGE_MAX,
    caller: Caller = allowed(READ_AUDIT),
) -> dict[str, Any]:
    audit = caller.services.audit
    if audit is None:
        return {"records": [], "order": order, "next_after": None}
    # One more than the page: whether there is a next page, without a second query.
    rows = audit.read(
        since=since, collection_id=collection, limit=limit + 1, after=after, newest_first=order == "newest"
    )
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "records": [dict(r) for r in page],
        "order": order,
        "next_after": page[-1]["id"] if more else None,
    }


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
