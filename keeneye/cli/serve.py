"""``keeneye serve``: the Rekognition-compatible server (AWS JSON 1.1 + SigV4) and the native API.

Clients sign with the access key from ``KEENEYE_ACCESS_KEY_ID`` / ``KEENEYE_SECRET_ACCESS_KEY``; if
those are unset, a key pair is created once in ``<data_dir>/credentials.json`` (mode 0600). The
command prints where the key lives and its access key id, never the secret.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from keeneye.cli.common import DataDirOption, fail, load_settings, user_errors

if TYPE_CHECKING:
    from keeneye.auth.keyring import KeyRing
    from keeneye.config import Settings

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).


def serve(
    host: str | None = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", min=0, max=65535, help="TCP port (default 8000)"),
    data_dir: Path | None = DataDirOption,
    bucket: list[str] = typer.Option(
        [],
        "--bucket",
        help="Serve S3Object images of bucket NAME from local FOLDER (NAME=FOLDER, repeatable); "
        "names with '..' or links out of FOLDER are refused",
    ),
    s3_endpoint: str | None = typer.Option(
        None,
        "--s3-endpoint",
        help="S3-compatible endpoint for other buckets (standard AWS credential variables)",
    ),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error"),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help="Run stream processors (Ray actors) and PersonTracking / Redaction jobs (Ray tasks) on the Ray "
        "cluster at HOST:PORT (streams.ray_address, video_jobs.ray_address; docs/streams.md)",
    ),
) -> None:
    """Serve Rekognition's API on POST / (boto3 with endpoint_url) and the native API under /v1.

    Example: keeneye serve --port 8000 --bucket photos=/srv/photos
    Then: boto3.client("rekognition", endpoint_url="http://127.0.0.1:8000", region_name="us-east-1",
    aws_access_key_id=..., aws_secret_access_key=...)
    """
    from keeneye.auth.keyring import KeyRing
    from keeneye.aws.images import parse_bucket_mapping
    from keeneye.service.governance.credentials import load_or_create

    with user_errors():
        settings = load_settings(data_dir)
        try:
            buckets = {**settings.server.buckets, **parse_bucket_mapping(bucket)}
        except ValueError as exc:
            fail("InvalidParameter", str(exc))
        for name, folder in buckets.items():
            if not folder.is_dir():
                fail("InvalidParameter", f"--bucket {name}={folder}: not a folder")
        server = settings.server.model_copy(
            update={
                "host": host or settings.server.host,
                "port": settings.server.port if port is None else port,
                "buckets": buckets,
                "s3_endpoint": s3_endpoint or settings.server.s3_endpoint,
            }
        )
        settings = settings.model_copy(update={"server": server})
        if ray_address is not None:
            streams = settings.streams.model_copy(update={"ray_address": ray_address})
            jobs = settings.video_jobs.model_copy(update={"ray_address": ray_address})
            settings = settings.model_copy(update={"streams": streams, "video_jobs": jobs})
        source = load_or_create(settings)
        if source.origin == "env":
            typer.echo(
                f"keeneye: access key {source.key.access_key_id} (from KEENEYE_ACCESS_KEY_ID)", err=True
            )
        else:
            verb = "created" if source.created else "using"
            typer.echo(
                f"keeneye: {verb} key pair in {source.path} (access key id {source.key.access_key_id}; "
                "the secret is in that file)",
                err=True,
            )
        run(settings, KeyRing((source.key,)), log_level)


def run(settings: Settings, keys: KeyRing, log_level: str = "info") -> None:
    """Build the app (models load here) and run uvicorn until interrupted."""
    import uvicorn

    from keeneye.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations at start are not news
    app = create_app(settings, keys=keys)
    typer.echo(
        f"keeneye: Rekognition API on http://{settings.server.host}:{settings.server.port}/ "
        "(native API and OpenAPI under /v1, /docs)",
        err=True,
    )
    uvicorn.run(app, host=settings.server.host, port=settings.server.port, log_level=log_level)
