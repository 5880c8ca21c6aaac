"""Helpers shared by CLI commands: settings, JSON output, one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from pydantic import ValidationError

from keeneye.config import Settings
from keeneye.core.errors import KeeneyeError

DataDirOption = typer.Option(
    None, "--data-dir", envvar="KEENEYE_DATA_DIR", help="Data directory (models, databases). Default: ./var"
)


def load_settings(data_dir: Path | None) -> Settings:
    try:
        return Settings() if data_dir is None else Settings(data_dir=data_dir)
    except ValidationError as exc:
        fail("InvalidConfiguration", str(exc).replace("\n", "; "))


def fail(code: str, message: str, exit_code: int = 1) -> NoReturn:
    typer.echo(f"keeneye: error: {code}: {message}", err=True)
    raise typer.Exit(exit_code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn keeneye's own errors into one line on stderr and exit code 1."""
    try:
        yield
    except KeeneyeError as exc:
        fail(exc.code, exc.message)
    except KeyboardInterrupt:
        fail("Interrupted", "stopped by the user", 130)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
