"""Images named by a request: ``Image.Bytes`` as sent, or ``Image.S3Object`` from a mapped bucket.

The server never opens a path a request names. An ``S3Object{Bucket, Name}`` is read only when the
operator mapped ``Bucket`` to a folder (``--bucket NAME=FOLDER``): the file is ``FOLDER/Name`` after
resolving links, and must stay inside ``FOLDER`` (``..``, absolute names and symlinks out of it are
refused with ``InvalidS3ObjectException``, as are a missing object and a bucket not served, all with
Rekognition's one message, :data:`NO_OBJECT`, which names no bucket; whether the caller may read the
object at all, ``s3:GetObject``, is checked before, with its request). Buckets not mapped locally are
fetched from ``--s3-endpoint`` when one is configured (botocore's S3 client, standard AWS
credential variables). Objects over 15 MB are ``ImageTooLargeException``, as on Rekognition, and images
(bytes or objects) whose header gives a height or width under 80 pixels are ``InvalidParameterException``,
as Rekognition answers them (read from the header, nothing decoded). Videos of stored-video jobs come
from the same places; remote ones are downloaded for the job and deleted after it; a video over
``max_video_bytes`` (``video_jobs.max_bytes``, 10 GiB by default: Rekognition's limit) is
``VideoTooLargeException`` at Start, local or remote.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from keeneye.analysis.images import image_size
from keeneye.aws.errors import AwsError
from keeneye.aws.model import MAX_S3_IMAGE_BYTES
from keeneye.store.files import private_dir

MAX_VIDEO_BYTES = 10 * 1024**3  # Rekognition's limit for stored videos (10 GB)
MIN_IMAGE_PX = 80  # Rekognition's smallest image height and width
# Rekognition's one answer for an S3Object it cannot read, whatever the reason: a missing object, a bucket
# this server does not serve, a key that escapes its folder and a failed S3 call read the same, and name
# no bucket or folder of the server.
NO_OBJECT = "Unable to get object metadata from S3. Check object key, region and/or access permissions."


def _no_object() -> AwsError:
    return AwsError("InvalidS3ObjectException", NO_OBJECT)


def parse_bucket_mapping(values: list[str]) -> dict[str, Path]:
    """``["photos=/srv/photos", ...]`` -> ``{"photos": Path("/srv/photos")}`` (CLI ``--bucket``)."""
    out: dict[str, Path] = {}
    for v in values:
        name, sep, folder = v.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--bucket wants NAME=FOLDER, got {v!r}")
        out[name] = Path(folder)
    return out


@dataclass
class ImageLoader:
    """Turns a Rekognition ``Image`` structure into encoded image bytes."""

    buckets: Mapping[str, Path] = field(default_factory=dict)
    s3_endpoint: str | None = None
    max_s3_bytes: int = MAX_S3_IMAGE_BYTES
    max_video_bytes: int = MAX_VIDEO_BYTES
    min_image_px: int = MIN_IMAGE_PX
    _s3: Any = None

    def load(self, image: Mapping[str, Any] | None) -> bytes:
        """The image's bytes, once its header shows it is at least ``min_image_px`` in both sides
        (InvalidParameterException, as Rekognition; not a JPEG/PNG: InvalidImageFormatException)."""
        data = self._load(image)
        width, height = image_size(data)
        if min(width, height) < self.min_image_px:
            raise AwsError(
                "InvalidParameterException",
                f"Request has invalid parameters: the image is {width}x{height} pixels; the minimum "
                f"height and width is {self.min_image_px} pixels",
            )
        return data

    def _load(self, image: Mapping[str, Any] | None) -> bytes:
        if not image:
            raise AwsError("InvalidParameterException", "Image must have Bytes or S3Object")
        has_bytes, has_s3 = "Bytes" in image, "S3Object" in image
        if has_bytes == has_s3:
            raise AwsError("InvalidParameterException", "Image must have exactly one of Bytes or S3Object")
        if has_bytes:
            data = image["Bytes"]
            assert isinstance(data, bytes)  # decoded and validated by keeneye.aws.model
            return data
        s3 = image["S3Object"]
        bucket, name = s3.get("Bucket"), s3.get("Name")
        if not bucket or not name:
            raise _no_object()
        _check_key(bucket, name, s3.get("Version"))
        if bucket in self.buckets:
            return self._read_local(self.buckets[bucket], bucket, name)
        if self.s3_endpoint:
            return self._read_s3(bucket, name, s3.get("Version"))
        raise _no_object()

    def video_path(self, s3: Mapping[str, Any] | None) -> Path:
        """The local file of a video ``S3Object`` in a mapped bucket (stored-video jobs read files, not
        bytes, and have no 15 MB limit); for buckets behind ``--s3-endpoint`` see :meth:`fetch_video`."""
        bucket, name = _video_object(s3)
        if bucket not in self.buckets:
            raise _no_object()
        return self._local_path(self.buckets[bucket], bucket, name)

    def check_video(self, s3: Mapping[str, Any] | None) -> None:
        """Refuse (InvalidS3ObjectException, VideoTooLargeException) a video that is not there now, as
        Rekognition's Start* operations do: a local file, or an object behind ``--s3-endpoint``."""
        bucket, name = _video_object(s3)
        if bucket in self.buckets or not self.s3_endpoint:
            self._check_video_size(self.video_path(s3))
            return
        assert s3 is not None
        head = self._s3_call("head_object", bucket, name, s3.get("Version"))
        if int(head.get("ContentLength", 0)) > self.max_video_bytes:
            raise AwsError("VideoTooLargeException", f"the video is larger than {self.max_video_bytes} bytes")

    def fetch_video(self, s3: Mapping[str, Any], folder: Path) -> tuple[Path, bool]:
        """The video as a local file: ``(path, downloaded)``. Mapped buckets give their file; objects
        behind ``--s3-endpoint`` are streamed into a new file in ``folder`` (the caller deletes it when
        ``downloaded``), at most ``max_video_bytes``."""
        bucket, name = _video_object(s3)
        if bucket in self.buckets or not self.s3_endpoint:
            return self._check_video_size(self.video_path(s3)), False
        obj = self._s3_call("get_object", bucket, name, s3.get("Version"))
        private_dir(folder)  # mkstemp makes the file 0600; the folder 0700, whatever the umask
        fd, tmp = tempfile.mkstemp(prefix="video-", suffix=Path(name).suffix[:16], dir=folder)
        path, written = Path(tmp), 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in obj["Body"].iter_chunks(1 << 20):
                    written += len(chunk)
                    if written > self.max_video_bytes:
                        raise AwsError(
                            "VideoTooLargeException", f"the video is larger than {self.max_video_bytes} bytes"
                        )
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, True

    def _check_video_size(self, path: Path) -> Path:
        if path.stat().st_size > self.max_video_bytes:
            raise AwsError("VideoTooLargeException", f"the video is larger than {self.max_video_bytes} bytes")
        return path

    def _local_path(self, folder: Path, bucket: str, name: str) -> Path:
        root = folder.resolve()
        if name.startswith("/") or "\\" in name or any(p in ("..", "") for p in name.split("/")):
            raise _no_object()
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise _no_object()
        return path

    def _read_local(self, folder: Path, bucket: str, name: str) -> bytes:
        path = self._local_path(folder, bucket, name)
        # O_NOFOLLOW: a link swapped in between the check and the open is not followed.
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise _no_object() from None
        with os.fdopen(fd, "rb") as f:
            data = f.read(self.max_s3_bytes + 1)
        if len(data) > self.max_s3_bytes:
            raise AwsError(
                "ImageTooLargeException",
                f"Image size is too large: the limit for S3 objects is {self.max_s3_bytes} bytes",
            )
        return data

    def _s3_call(self, method: str, bucket: str, name: str, version: str | None) -> dict[str, Any]:
        """One S3 call on ``--s3-endpoint`` (botocore); failures are InvalidS3ObjectException."""
        if self._s3 is None:
            self._s3 = botocore.session.get_session().create_client("s3", endpoint_url=self.s3_endpoint)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": name}
        if version:
            kwargs["VersionId"] = version
        try:
            out: dict[str, Any] = getattr(self._s3, method)(**kwargs)
        except (ClientError, BotoCoreError):
            raise _no_object() from None
        return out

    def _read_s3(self, bucket: str, name: str, version: str | None) -> bytes:
        obj = self._s3_call("get_object", bucket, name, version)
        if int(obj.get("ContentLength", 0)) > self.max_s3_bytes:
            raise AwsError(
                "ImageTooLargeException",
                f"Image size is too large: the limit for S3 objects is {self.max_s3_bytes} bytes",
            )
        try:
            data: bytes = obj["Body"].read(self.max_s3_bytes + 1)
        except (ClientError, BotoCoreError):
            raise _no_object() from None
        if len(data) > self.max_s3_bytes:
            raise AwsError(
                "ImageTooLargeException",
                f"Image size is too large: the limit for S3 objects is {self.max_s3_bytes} bytes",
            )
        return data


def _video_object(s3: Mapping[str, Any] | None) -> tuple[str, str]:
    if not s3 or not s3.get("Bucket") or not s3.get("Name"):
        raise _no_object()
    _check_key(str(s3["Bucket"]), str(s3["Name"]), s3.get("Version"))
    return str(s3["Bucket"]), str(s3["Name"])


def _check_key(bucket: str, name: str, version: str | None) -> None:
    """Refuse what no S3 object can be named and what the file system and botocore cannot take: a NUL
    (``ValueError: embedded null byte``) or text that is not UTF-8 (a lone surrogate from a JSON
    ``\\ud800`` escape: ``UnicodeEncodeError``); both were answered InternalServerError."""
    for text in (bucket, name, version or ""):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            ok = False
        else:
            ok = "\x00" not in text
        if not ok:
            raise _no_object()
