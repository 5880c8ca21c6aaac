"""``keeneye audit``: read, verify and export the audit log (append-only; nothing here edits it).

``keeneye audit`` prints records; ``keeneye audit verify`` walks the hash chain (exit code 1 and
the first bad record when it is broken); ``keeneye audit export FILE.jsonl`` writes the records with
their hashes for an external verifier or write-once storage (docs/accountability.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from keeneye.cli.common import DataDirOption, fail, load_settings, print_json, user_errors

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).

app = typer.Typer(
    help="Read, verify and export the audit log (tamper-evident: a SHA-256 hash chain).",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _since(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        when = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        fail("InvalidParameter", f"--since {since!r} is not an ISO 8601 time")
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@app.callback()
def audit(
    ctx: typer.Context,
    since: str | None = typer.Option(None, "--since", help="Only records at or after this ISO 8601 time"),
    collection: str | None = typer.Option(None, "--collection", help="Only records of this collection"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of one line per record"),
    limit: int = typer.Option(1000, "--limit", min=1, max=10_000, help="At most this many records"),
    newest: bool = typer.Option(False, "--newest", help="Newest first (default: oldest first, as written)"),
    after: int | None = typer.Option(
        None, "--after", min=0, help="Continue after this record id (the last one printed), in the same order"
    ),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Print audit records: time, access key, operation, collection, faces, matches, threshold.

    Records of searches with a threshold below 99 are flagged (below the level AWS recommends for
    public-safety use). Example: keeneye audit --since 2026-01-01T00:00:00Z --collection staff.
    Subcommands: verify (check the hash chain), export (JSON Lines with hashes).
    """
    if ctx.invoked_subcommand is not None:
        return
    from keeneye.service.governance.audit import AuditLog
    from keeneye.store.db import Store

    with user_errors():
        settings = load_settings(data_dir)
        when = _since(since)
        records = AuditLog(Store.open(settings.data_dir, settings.database_url)).read(
            since=when, collection_id=collection, limit=limit, after=after, newest_first=newest
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
            details = (
                "" if not r.get("details") else " " + " ".join(f"{k}={v}" for k, v in r["details"].items())
            )
            typer.echo(
                f"{r['time']} {r['access_key'] or '-'} {r['operation']} {r['collection_id'] or '-'} "
                f"faces={r['request_faces']}{threshold}{flag} matches=[{hits}]{details}"
            )


@app.command("verify")
def verify(
    file: Path | None = typer.Option(
        None, "--file", help="Verify a `keeneye audit export` file instead of the database"
    ),
    head: str | None = typer.Option(
        None,
        "--head",
        metavar="ID:HASH",
        help="A record known from outside (an earlier `verify --json`'s last_id:last_hash, kept where "
        "this server cannot change it): the log must still hold it, unchanged",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Walk the audit hash chain: every record's hash, every link, the head anchor and the database's head.

    Exit code 0 when the chain is intact, 1 naming the first bad record (a changed field, a record
    removed from the middle or the start, records reordered, records removed from the end).
    """
    from keeneye.service.governance.audit import AuditLog, read_export, verify_chain
    from keeneye.store.db import Store

    with user_errors():
        if file is not None:
            if head is not None:
                fail("InvalidParameter", "--head checks the database's log, not an export (--file)")
            try:
                records = list(read_export(file))
            except (OSError, ValueError) as exc:
                fail("InvalidParameter", f"{file}: {exc}")
            # An export made with --since starts mid-chain: its first record is taken as given.
            starts_at_genesis = bool(records) and records[0]["prev_hash"] == "0" * 64
            report, _ = verify_chain(records, from_genesis=starts_at_genesis)
            if report.ok and records and not starts_at_genesis:
                report.warnings.append(
                    f"the export starts at record {records[0]['id']}: records before it were not checked"
                )
        else:
            expected = None if head is None else _known_head(head)
            settings = load_settings(data_dir)
            report = AuditLog(Store.open(settings.data_dir, settings.database_url)).verify(expected)
        if as_json:
            print_json(report.to_dict())
        elif report.ok:
            span = f" (records {report.first_id}-{report.last_id})" if report.records else ""
            typer.echo(f"audit log intact: {report.records} records{span}, head {report.last_hash or '-'}")
        for warning in report.warnings:
            typer.echo(f"keeneye: warning: {warning}", err=True)
        if not report.ok:
            fail("AuditChainBroken", str(report.problem))


def _known_head(text: str) -> tuple[int, str]:
    record_id, _, digest = text.partition(":")
    if not (record_id.isdigit() and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        fail("InvalidParameter", f"--head {text[:80]!r}: give ID:HASH (a record id and its 64-hex hash)")
    return int(record_id), digest


@app.command("export")
def export(
    file: Path = typer.Argument(..., help="Where to write the records (JSON Lines; '-' for stdout)"),
    since: str | None = typer.Option(None, "--since", help="Only records at or after this ISO 8601 time"),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Write audit records with their prev_hash and hash as JSON Lines, oldest first.

    Each line holds exactly the hashed fields plus `hash`, so anyone can recompute the chain
    (`keeneye audit verify --file FILE`, or the 15 lines in docs/accountability.md). Copy exports
    to write-once storage: that is what makes rewriting the whole log detectable.
    """
    import sys

    from keeneye.service.governance.audit import AuditLog
    from keeneye.store.db import Store
    from keeneye.store.files import private_open

    with user_errors():
        settings = load_settings(data_dir)
        log = AuditLog(Store.open(settings.data_dir, settings.database_url))
        when = _since(since)
        if str(file) == "-":
            n = log.export(sys.stdout, since=when)
        else:
            tmp = file.with_name(file.name + ".tmp")
            with private_open(tmp, "w", encoding="utf-8") as out:  # the audit trail: 0600
                n = log.export(out, since=when)
            tmp.replace(file)
        typer.echo(f"exported {n} audit records to {file}", err=True)
