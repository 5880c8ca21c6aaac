"""What the AWS CLI and the AWS SDK for JavaScript v3 tests share: the photos they enrol and search, and
an environment that points an unmodified client at the test server.

The clients run as subprocesses whose environment is built from nothing: the endpoint, key pair and
region in the standard variables (the zero-code switch of the README), an empty home and absent AWS
config files so nothing from the machine (profiles, credentials, proxies) leaks in, and no instance
metadata look-ups: every request goes to the test server on 127.0.0.1.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.aws.signing import AKID, SECRET

REGION = "us-east-1"
CALL_TIMEOUT_S = 60  # one client call (index, search); each subprocess is bounded by a multiple of it

# One photo of each of the five people of face_recognition's knn training set, and another photo of
# one of them to search with (faces/face_recognition in ../shared/data, MANIFEST.md section 6).
KNN = "faces/face_recognition/knn_examples"
ENROL = {
    "alex_lacamoire": f"{KNN}/train/alex_lacamoire/img1.jpg",
    "biden": f"{KNN}/train/biden/biden.jpg",
    "kit_harington": f"{KNN}/train/kit_harington/john1.jpeg",
    "obama": f"{KNN}/train/obama/obama.jpg",
    "rose_leslie": f"{KNN}/train/rose_leslie/img1.jpg",
}
PROBE = ("obama", f"{KNN}/test/obama1.jpg")


def client_environment(
    endpoint: str, home: Path, *, variable: str = "AWS_ENDPOINT_URL_REKOGNITION"
) -> dict[str, str]:
    """The whole environment of a client subprocess talking to ``endpoint`` (``variable`` names it)."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        variable: endpoint,
        "AWS_ACCESS_KEY_ID": AKID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,  # the AWS CLI (botocore)
        "AWS_REGION": REGION,  # the SDK for JavaScript v3
        "AWS_MAX_ATTEMPTS": "1",
    }
