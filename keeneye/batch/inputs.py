"""What a batch job reads: ``INPUT`` -> a list of :class:`BatchInput`, and one input -> its bytes.

``INPUT`` is one of:

- a folder: every image (.jpg .jpeg .png) and video (.mp4 .mkv .avi .mov .ts) under it, recursively;
- a glob (``photos/**/*.jpg``): every file it matches, whatever its name;
- ``s3://bucket/prefix``: the media objects whose key starts with ``prefix``, from a folder the bucket
  is mapped to (``--bucket NAME=FOLDER``, as ``keeneye serve``), else listed through ``--s3-endpoint``
  (botocore's S3 client, standard AWS credential variables);
- a manifest file: one path or S3 URI per line, or Rekognition's JSON Lines manifest
  (``{"source-ref": "s3://bucket/key"}`` per line). Relative paths are relative to the manifest.

Folders, globs and prefixes are listed in sorted order; a manifest keeps its own order. An input named
twice is kept once (the first). Which inputs are images or videos is decided from the name; a file that
is not what its name says becomes an error row when read, never a failed job.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from keeneye.batch.base import BatchInput
from keeneye.core.errors import ImageTooLarge, InvalidParameter, NotFound

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".ts"})
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES
MAX_MANIFEST_BYTES = 256 * 1024 * 1024

Kind = Literal["image", "video"]


def kind_of(name: str) -> Kind:
    """``video`` for a video file name, else ``image`` (the decoder then says if it is one)."""
    return "video" if PurePosixPath(name).suffix.lower() in VIDEO_SUFFIXES else "image"


@dataclass(frozen=True)
class Sources:
    """Where ``s3://`` inputs come from: ``buckets`` maps a bucket name to a local folder (str, so the
    value pickles and JSON-encodes as it is); ``s3_endpoint`` serves the other buckets."""

    buckets: Mapping[str, str] = field(default_factory=dict)
    s3_endpoint: str | None = None

    def to_options(self) -> dict[str, Any]:
        return {"buckets": dict(self.buckets), "s3_endpoint": self.s3_endpoint}

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Sources:
        return cls(dict(options.get("buckets") or {}), options.get("s3_endpoint"))


def parse_buckets(values: Iterable[str]) -> dict[str, str]:
    """``["photos=/srv/photos"]`` -> ``{"photos": "/srv/photos"}``; InvalidParameter if malformed."""
    out: dict[str, str] = {}
    for v in values:
        name, sep, folder = v.partition("=")
        if not sep or not name or not folder:
            raise InvalidParameter(f"--bucket wants NAME=FOLDER, got {v!r}")
        out[name] = folder
    return out


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; InvalidParameter for anything else."""
    if not uri.startswith("s3://"):
        raise InvalidParameter(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise InvalidParameter(f"S3 URI without a bucket: {uri!r}")
    return bucket, key


def list_inputs(
    spec: str, sources: Sources, kinds: frozenset[str] = frozenset({"image", "video"})
) -> list[BatchInput]:
    """The inputs ``spec`` names (see the module doc). Folders and prefixes keep only the ``kinds`` a
    task takes (an image task skips the videos of a folder); globs and manifests keep what they name.
    Raises NotFound (nothing there), InvalidParameter (a bad manifest line, an unmapped bucket)."""
    if spec.startswith("s3://"):
        uris = [u for u in _list_s3(spec, sources) if kind_of(u) in kinds]
    elif any(c in spec for c in "*?["):
        uris = [p for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
        if not uris:
            raise NotFound(f"no file matches {spec!r}")
    else:
        path = Path(spec)
        if path.is_dir():
            uris = [str(p) for p in _walk(path) if kind_of(str(p)) in kinds]
        elif path.is_file():
            uris = [str(path)] if path.suffix.lower() in MEDIA_SUFFIXES else read_manifest(path)
        else:
            raise NotFound(f"{spec} does not exist (a folder, glob, s3://bucket/prefix or manifest file)")
    seen: set[str] = set()
    out: list[BatchInput] = []
    for uri in uris:
        if uri not in seen:
            seen.add(uri)
            out.append(BatchInput(uri, kind_of(uri)))
    return out


def _walk(folder: Path) -> list[Path]:
    """Media files under ``folder``, recursively, sorted by path (links to folders not followed)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(Path(root) / f for f in files if Path(f).suffix.lower() in MEDIA_SUFFIXES)
    return sorted(found)


def read_manifest(path: Path) -> list[str]:
    """Paths / S3 URIs of a manifest: plain lines, or JSON Lines with ``source-ref`` (Rekognition's
    and SageMaker Ground Truth's format). Blank lines and ``#`` comments are skipped."""
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise InvalidParameter(f"{path}: the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter(
            f"{path} is neither a folder, an image/video nor a manifest (UTF-8 text, one path per line)"
        ) from None
    out: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidParameter(f"{path}:{number}: not valid JSON ({e.msg})") from None
            ref = doc.get("source-ref") if isinstance(doc, dict) else None
            if not isinstance(ref, str) or not ref:
                raise InvalidParameter(f'{path}:{number}: a JSON line needs a "source-ref" string')
            line = ref
        if line.startswith("s3://"):
            split_s3(line)
            out.append(line)
        else:
            p = Path(line)
            out.append(str(p if p.is_absolute() else path.parent / p))
    return out


# -- S3 -----------------------------------------------------------------------------------------
def _list_s3(uri: str, sources: Sources) -> list[str]:
    bucket, prefix = split_s3(uri)
    if bucket in sources.buckets:
        root = Path(sources.buckets[bucket]).resolve()
        if not root.is_dir():
            raise NotFound(f"--bucket {bucket}={sources.buckets[bucket]}: not a folder")
        keys = [p.relative_to(root).as_posix() for p in _walk(root)]
        return [f"s3://{bucket}/{k}" for k in keys if k.startswith(prefix)]
    client = _s3_client(sources, bucket)

    keys = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
    except (BotoCoreError, ClientError) as e:
        raise NotFound(f"cannot list {uri}: {e}") from e
    return [f"s3://{bucket}/{k}" for k in sorted(keys) if PurePosixPath(k).suffix.lower() in MEDIA_SUFFIXES]


_clients: dict[str, Any] = {}


def _s3_client(sources: Sources, bucket: str) -> Any:
    if not sources.s3_endpoint:
        raise InvalidParameter(
            f"bucket {bucket!r} is neither mapped (--bucket {bucket}=FOLDER) nor served (--s3-endpoint URL)"
        )
    client = _clients.get(sources.s3_endpoint)
    if client is None:
        client = botocore.session.get_session().create_client("s3", endpoint_url=sources.s3_endpoint)
        _clients[sources.s3_endpoint] = client
    return client


def local_path(uri: str, sources: Sources) -> Path | None:
    """The local file of ``uri`` (a path, or an object of a mapped bucket, which must stay inside the
    bucket's folder); None for an object behind ``--s3-endpoint``."""
    if not uri.startswith("s3://"):
        return Path(uri)
    bucket, key = split_s3(uri)
    if bucket not in sources.buckets:
        return None
    root = Path(sources.buckets[bucket]).resolve()
    path = (root / key).resolve()
    if not key or not path.is_relative_to(root):
        raise InvalidParameter(f"{uri}: the key leaves the bucket's folder")
    return path


def read_bytes(uri: str, sources: Sources, max_bytes: int) -> bytes:
    """The content of ``uri``, at most ``max_bytes`` (ImageTooLarge above; NotFound if missing)."""
    path = local_path(uri, sources)
    if path is not None:
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise NotFound(f"{uri} is not a file")
            if size > max_bytes:
                raise ImageTooLarge(f"{uri} is {size} bytes; the limit is {max_bytes} bytes")
            return path.read_bytes()
        except OSError as e:
            raise NotFound(f"cannot read {uri}: {e.strerror or e}") from e
    bucket, key = split_s3(uri)
    client = _s3_client(sources, bucket)

    try:
        head = client.head_object(Bucket=bucket, Key=key)
        if int(head.get("ContentLength", 0)) > max_bytes:
            raise ImageTooLarge(f"{uri} is {head['ContentLength']} bytes; the limit is {max_bytes} bytes")
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read(max_bytes + 1)
    except (BotoCoreError, ClientError) as e:
        raise NotFound(f"cannot read {uri}: {e}") from e
    if len(data) > max_bytes:
        raise ImageTooLarge(f"{uri} is larger than {max_bytes} bytes")
    return bytes(data)
