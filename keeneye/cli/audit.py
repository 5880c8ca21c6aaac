"""``keeneye audit``: read the audit log of identity operations (append-only; nothing here edits it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from keeneye.cli.common import DataDirOption, fail, load_settings, print_json, user_errors


def audit(
    since: str | None = typer.Option(None, "--since", help="Only records at or after this ISO 8601 time"),
    collection: str | None = typer.Option(None, "--collection", help="Only records of this collection"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of one line per record"),
    limit: int = typer.Option(1000, "--limit", min=1, max=10_000, help="At most this many records"),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Print audit records: time, access key, operation, collection, faces, matches, threshold.

    Records of searches with a threshold below 99 are flagged (below the level AWS recommends for
    public-safety use). Example: keeneye audit --since 2026-01-01T00:00:00Z --collection staff
    """
    from keeneye.service.audit import AuditLog
    from keeneye.store.db import Store

    with user_errors():
        settings = load_settings(data_dir)
        when = None
        if since is not None:
            try:
                when = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                fail("InvalidParameter", f"--since {since!r} is not an ISO 8601 time")
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
        records = AuditLog(Store.open(settings.data_dir, settings.database_url)).read(
            since=when, collection_id=collection, limit=limit
        )
        if as_json:
            print_json(records)
            return
        for r in records:
            hits = ", ".join(
                f"{m.get('FaceId') or m.get('UserId') or '-'}"
                + (f" ({m['Similarity']:.1f})" if m.get("Similarity") is not None else "")
                for m in r["matches"]
            )
            threshold = "" if r["threshold"] is None else f" threshold={r['threshold']:g}"
            flag = " [below 99]" if r["flagged_below_99"] else ""
            typer.echo(
                f"{r['time']} {r['access_key'] or '-'} {r['operation']} {r['collection_id'] or '-'} "
                f"faces={r['request_faces']}{threshold}{flag} matches=[{hits}]"
            )
