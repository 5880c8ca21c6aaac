"""``keeneye collections set-retention`` and ``keeneye purge``: how long faces are kept, and the purge.

Both work on the data directory's store directly (no server, no models) and append an audit record
(access key ``-``: the operator at the machine).
"""

from __future__ import annotations

from pathlib import Path

import typer

from keeneye.cli.common import DataDirOption, fail, load_settings, print_json, user_errors

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).

app = typer.Typer(help="Face collections: retention of their faces.", no_args_is_help=True)


@app.command("set-retention")
def set_retention(
    collection_id: str = typer.Argument(..., help="The collection (CollectionId)"),
    days: int | None = typer.Option(
        None, "--days", min=1, max=36_500, help="Keep faces this many days after they were indexed"
    ),
    clear: bool = typer.Option(False, "--clear", help="Keep faces until they are deleted (no retention)"),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Set how long a collection keeps its faces; older faces are deleted by the purge.

    The purge runs in `keeneye serve` every retention.purge_interval_s, or now with `keeneye purge`.
    Example: keeneye collections set-retention visitors --days 30
    """
    from keeneye.service.builder import ServiceBuilder

    if (days is None) == (not clear):
        fail("InvalidParameter", "give either --days N or --clear")
    with user_errors():
        settings = load_settings(data_dir)
        services = ServiceBuilder(settings)
        info = services.stored_collections.set_retention(collection_id, days)
        services.audit.append(
            "SetCollectionRetention", access_key=None, collection_id=collection_id, details={"days": days}
        )
        print_json(
            {
                "CollectionId": info.collection_id,
                "RetentionDays": info.retention_days,
                "FaceCount": info.face_count,
            }
        )


def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be deleted"),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Delete what is past its retention now: faces, job results, delivered notifications.

    Faces go by their collection's retention (keeneye collections set-retention), job results and
    notifications by retention.job_results_days / retention.notifications_days. Prints JSON of what
    went (or, with --dry-run, would go); a real purge appends an audit record with the counts.
    """
    from keeneye.service.builder import ServiceBuilder

    with user_errors():
        settings = load_settings(data_dir)
        services = ServiceBuilder(settings)
        report = services.retention.purge(dry_run=dry_run)
        services.stored_collections.close()
        print_json(report.to_dict())
