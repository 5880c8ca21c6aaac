"""Pose from a detector's landmarks (no face mesh): a fitted rotation, never a clipped sine.

Synthetic faces are the pose template itself, rotated by known angles and projected orthographically,
so the fit must give the angles back; then the case issue 11 met: a three-quarter face got Yaw 90.0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from keeneye.analysis.faces import POSE_TEMPLATE, pose_from_points
from keeneye.core.types import EYE_LEFT, EYE_RIGHT, MOUTH_CENTER, MOUTH_LEFT, MOUTH_RIGHT, NOSE

FIVE = (EYE_LEFT, EYE_RIGHT, NOSE, MOUTH_LEFT, MOUTH_RIGHT)
BLAZE = (EYE_LEFT, EYE_RIGHT, NOSE, MOUTH_CENTER)


def _rotation(roll: float, yaw: float, pitch: float) -> np.ndarray:
    """Face frame -> image frame (x right, y down, z away) for Rekognition-signed angles in degrees:
    yaw > 0 turns the face toward the image right, pitch > 0 tilts the chin down, roll > 0 is clockwise."""
    r, y, p = (math.radians(v) for v in (roll, yaw, pitch))
    # yaw about the image y axis: the face's +z (away) swings toward -x when it turns to the image right
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    # pitch about the x axis: chin (+y) moves toward the camera (-z) when tilted down
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    # the order the face mesh's Euler split (geometrictools YZX) undoes
    return np.asarray(rx @ rz @ ry, np.float64)


def _project(names: tuple[str, ...], roll: float, yaw: float, pitch: float, scale: float = 60.0) -> dict:  # type: ignore[type-arg]
    rot = _rotation(roll, yaw, pitch)
    centre = np.array([320.0, 240.0])
    return {n: tuple((scale * rot @ np.array(POSE_TEMPLATE[n]))[:2] + centre) for n in names}


@pytest.mark.parametrize(
    ("roll", "yaw", "pitch"),
    [
        (0, 0, 0),
        (0, 30, 0),
        (0, -50, 0),
        (0, 70, 0),
        (10, 0, 0),
        (-20, 25, 0),
        (0, 0, 15),
        (0, 0, -20),
        (5, -35, 10),
    ],
)
def test_five_points_give_the_angles_back(roll: float, yaw: float, pitch: float) -> None:
    got = pose_from_points(_project(FIVE, roll, yaw, pitch))
    assert got is not None
    assert got == pytest.approx((roll, yaw, pitch), abs=1.0)


@pytest.mark.parametrize("yaw", [45.0, 60.0, 75.0])
def test_three_quarter_face_is_not_yaw_90(yaw: float) -> None:
    for names in (FIVE, BLAZE, (EYE_LEFT, EYE_RIGHT, NOSE)):
        got = pose_from_points(_project(names, 0.0, yaw, 0.0))
        assert got is not None
        assert abs(got[1]) < 89.0
        assert got[1] == pytest.approx(yaw, abs=3.0), names


def test_mirror_image_flips_yaw_and_roll() -> None:
    pts = _project(FIVE, 8.0, 40.0, 5.0)
    mirrored = {  # image-left and image-right points swap names under a mirror
        EYE_LEFT: pts[EYE_RIGHT],
        EYE_RIGHT: pts[EYE_LEFT],
        NOSE: pts[NOSE],
        MOUTH_LEFT: pts[MOUTH_RIGHT],
        MOUTH_RIGHT: pts[MOUTH_LEFT],
    }
    mirrored = {k: (640.0 - x, y) for k, (x, y) in mirrored.items()}
    a, b = pose_from_points(pts), pose_from_points(mirrored)
    assert a is not None and b is not None
    assert b == pytest.approx((-a[0], -a[1], a[2]), abs=0.5)


def test_needs_eyes_and_nose() -> None:
    assert pose_from_points({EYE_LEFT: (0.0, 0.0), EYE_RIGHT: (10.0, 0.0)}) is None


def test_swapped_eyes_of_a_profile_stay_within_90() -> None:
    """A detector that swaps a turned face's eyes must not make it face away from the camera."""
    pts = _project(FIVE, 0.0, 70.0, 0.0)
    swapped = dict(pts)
    swapped[EYE_LEFT], swapped[EYE_RIGHT] = pts[EYE_RIGHT], pts[EYE_LEFT]
    got = pose_from_points(swapped)
    assert got is not None
    assert abs(got[1]) <= 90.0
