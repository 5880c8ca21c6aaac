"""Images named by a request: ``Image.Bytes`` as sent, or ``Image.S3Object`` from a mapped bucket.

The server never opens a path a request names. An ``S3Object{Bucket, Name}`` is read only when the
operator mapped ``Bucket`` to a folder (``--bucket NAME=FOLDER``): the file is ``FOLDER/Name`` after
resolving links, and must stay inside ``FOLDER`` (``..``, absolute names and symlinks out of it are
refused with ``InvalidS3ObjectException``, as is a missing object). Buckets not mapped locally are
fetched from ``--s3-endpoint`` when one is configured (botocore's S3 client, standard AWS
credential variables). Objects over 15 MB are ``ImageTooLargeException``, as on Rekognition.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keeneye.aws.errors import AwsError
from keeneye.aws.model import MAX_S3_IMAGE_BYTES


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
    _s3: Any = None

    def load(self, image: Mapping[str, Any] | None) -> bytes:
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
            raise AwsError("InvalidS3ObjectException", "S3Object needs Bucket and Name")
        if bucket in self.buckets:
            return self._read_local(self.buckets[bucket], bucket, name)
        if self.s3_endpoint:
            return self._read_s3(bucket, name, s3.get("Version"))
        raise AwsError(
            "InvalidS3ObjectException",
            f"Unable to get object metadata from S3. Bucket {bucket!r} is not served",
        )

    def video_path(self, s3: Mapping[str, Any] | None) -> Path:
        """The local file of a video ``S3Object`` in a mapped bucket (stored-video jobs read files, not
        bytes, and have no 15 MB limit). Buckets behind ``--s3-endpoint`` are not served for video yet."""
        if not s3 or not s3.get("Bucket") or not s3.get("Name"):
            raise AwsError("InvalidS3ObjectException", "Video.S3Object needs Bucket and Name")
        bucket, name = s3["Bucket"], s3["Name"]
        if bucket not in self.buckets:
            raise AwsError(
                "InvalidS3ObjectException",
                f"Unable to get object metadata from S3. Bucket {bucket!r} is not served",
            )
        return self._local_path(self.buckets[bucket], bucket, name)

    def _local_path(self, folder: Path, bucket: str, name: str) -> Path:
        root = folder.resolve()
        missing = AwsError(
            "InvalidS3ObjectException",
            f"Unable to get object metadata from S3. Check object key {name!r} in {bucket!r}",
        )
        if name.startswith("/") or "\\" in name or any(p in ("..", "") for p in name.split("/")):
            raise missing
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise missing
        return path

    def _read_local(self, folder: Path, bucket: str, name: str) -> bytes:
        missing = AwsError(
            "InvalidS3ObjectException",
            f"Unable to get object metadata from S3. Check object key {name!r} in {bucket!r}",
        )
        path = self._local_path(folder, bucket, name)
        # O_NOFOLLOW: a link swapped in between the check and the open is not followed.
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise missing from None
        with os.fdopen(fd, "rb") as f:
            data = f.read(self.max_s3_bytes + 1)
        if len(data) > self.max_s3_bytes:
            raise AwsError(
                "ImageTooLargeException",
                f"Image size is too large: the limit for S3 objects is {self.max_s3_bytes} bytes",
            )
        return data

    def _read_s3(self, bucket: str, name: str, version: str | None) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._s3 is None:
            import botocore.session

            self._s3 = botocore.session.get_session().create_client("s3", endpoint_url=self.s3_endpoint)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": name}
        if version:
            kwargs["VersionId"] = version
        try:
            obj = self._s3.get_object(**kwargs)
            if int(obj.get("ContentLength", 0)) > self.max_s3_bytes:
                raise AwsError(
                    "ImageTooLargeException",
                    f"Image size is too large: the limit for S3 objects is {self.max_s3_bytes} bytes",
                )
            data: bytes = obj["Body"].read(self.max_s3_bytes + 1)
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(
                "InvalidS3ObjectException", f"Unable to get object from S3: {type(exc).__name__}"
            ) from None
        if len(data) > self.max_s3_bytes:
            raise AwsError(
                "ImageTooLargeException",
                f"Image size is too large: the limit for S3 objects is {self.max_s3_bytes} bytes",
            )
        return data
