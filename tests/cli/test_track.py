"""``keeneye track`` as a user runs it: a subprocess on the first 30 s of PETS09 S2.L1 at 5 fps.

One run (module fixture) writes the summary, the ``--output`` JSON and the ``--annotate`` video that the
tests below inspect, so the detector runs once (~10 s on 2 cores). The line is PETS09's vertical middle
line with p1 at the bottom and p2 at the top, so left -> right (anchor x growing past 0.5) is ``in``.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import assert_one_line_error, run

pytestmark = [pytest.mark.models, pytest.mark.data]

MIDDLE = "middle:0.5,1,0.5,0"
LEFT_HALF = "left:0,0,0.5,0,0.5,1,0,1"


@dataclass
class TrackRun:
    proc: subprocess.CompletedProcess[str]
    summary: dict[str, Any]
    output: Path
    annotated: Path


@pytest.fixture(scope="module")
def pets(shared_data: Path) -> Path:
    return shared_data / "video" / "pets09_s2l1" / "vtest_480x360.mp4"


@pytest.fixture(scope="module")
def track_run(pets: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrackRun:
    tmp = tmp_path_factory.mktemp("track")
    output, annotated = tmp / "tracks.json", tmp / "annotated.mp4"
    proc = run(
        "track",
        pets,
        "--max-seconds",
        "30",
        "--fps",
        "5",
        "--line",
        MIDDLE,
        "--zone",
        LEFT_HALF,
        "--output",
        output,
        "--annotate",
        annotated,
        data_dir=models_dir.parent,
    )
    assert proc.returncode == 0, proc.stderr
    return TrackRun(proc, json.loads(proc.stdout), output, annotated)


def test_summary_shape(track_run: TrackRun) -> None:
    s = track_run.summary
    assert s["width"] == 480 and s["height"] == 360
    assert 29_000 <= s["analysed_until_ms"] < 30_000
    assert s["frames_analysed"] == 150  # 30 s at 5 fps
    assert s["persons_tracked"] >= 5
    assert set(s["lines"]) == {"middle"} and set(s["lines"]["middle"]) == {"in", "out"}
    assert s["zones"]["left"]["entries"] >= 1
    assert s["output"] == str(track_run.output)
    assert track_run.proc.stderr == ""  # no progress bar when stderr is not a terminal


def test_output_tracks_have_ratio_boxes_in_time_order(track_run: TrackRun) -> None:
    doc = json.loads(track_run.output.read_text())
    assert doc["video_metadata"]["width"] == 480
    assert len(doc["tracks"]) == track_run.summary["persons_tracked"]
    for track in doc["tracks"]:
        times = [b["timestamp_ms"] for b in track["boxes"]]
        assert times == sorted(set(times)), "timestamps strictly increase"
        assert times[0] == track["first_timestamp_ms"] and times[-1] == track["last_timestamp_ms"]
        for b in track["boxes"]:
            box = b["box"]
            assert set(box) == {"left", "top", "width", "height"}
            assert all(0.0 <= v <= 1.0 for v in box.values())
            assert box["left"] + box["width"] <= 1.0 + 1e-6 and box["top"] + box["height"] <= 1.0 + 1e-6
    assert {e["kind"] for e in doc["zone_events"]} <= {"enter", "exit"}


def _anchor_x(track: dict[str, Any], timestamp_ms: int) -> tuple[float, list[float]]:
    """The anchor x (ratio) at ``timestamp_ms`` and at every earlier box of the track."""
    xs = {b["timestamp_ms"]: b["box"]["left"] + b["box"]["width"] / 2 for b in track["boxes"]}
    return xs[timestamp_ms], [x for t, x in xs.items() if t < timestamp_ms]


def test_middle_line_directions_follow_the_anchor(track_run: TrackRun) -> None:
    doc = json.loads(track_run.output.read_text())
    crossings = doc["line_crossings"]
    counts = doc["line_counts"]["middle"]
    assert counts["in"] >= 1 and counts["out"] >= 1, crossings
    assert counts == track_run.summary["lines"]["middle"]
    assert len(crossings) == counts["in"] + counts["out"]
    tracks = {t["track_id"]: t for t in doc["tracks"]}
    for c in crossings:
        track = tracks[c["track_id"]]
        now, before = _anchor_x(track, c["timestamp_ms"])
        # Earlier on the other side: this track's own earlier anchors or, when the track took over from
        # one lost near it (the counter's hand-over), where that lost track was last seen.
        before += _donor_anchors(doc["tracks"], track)
        if c["direction"] == "in":  # left -> right: now right of the line, earlier left of it
            assert now > 0.5 and min(before) < 0.5, c
        else:
            assert now < 0.5 and max(before) > 0.5, c


def _donor_anchors(tracks: list[dict[str, Any]], track: dict[str, Any]) -> list[float]:
    """Last anchors x of the tracks that ended at most 1.5 s before ``track`` began."""
    start = track["first_timestamp_ms"]
    return [
        t["boxes"][-1]["box"]["left"] + t["boxes"][-1]["box"]["width"] / 2
        for t in tracks
        if t is not track and 0 <= start - t["last_timestamp_ms"] <= 1500
    ]


def test_annotated_video_plays(track_run: TrackRun) -> None:
    import av

    assert track_run.summary["annotated"]["path"] == str(track_run.annotated)
    assert track_run.summary["annotated"]["codec"] in ("h264", "mjpeg")
    with av.open(str(track_run.annotated)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (480, 360)
        n = sum(1 for _ in container.decode(stream))
    assert n == track_run.summary["frames_analysed"]


def test_not_a_video_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    assert_one_line_error(run("track", bad), "InvalidVideo")


def test_missing_video_is_one_line_error(tmp_path: Path) -> None:
    assert_one_line_error(run("track", tmp_path / "nope.mp4"), "NotFound")


def test_truncated_video_is_one_line_error(tmp_path: Path, pets: Path) -> None:
    cut = tmp_path / "cut.mp4"
    # The moov box comes first in this file: the header survives, the body ends after ~5 % of it, so the
    # error comes mid-run, after the frames before the cut went through the detector.
    cut.write_bytes(pets.read_bytes()[:200_000])
    assert_one_line_error(run("track", cut, "--fps", "5"), "truncated")


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--line", "door", "--line 'door': expected NAME:x1,y1,x2,y2"),
        ("--line", "door:0.5,0,0.5", "4 numbers"),
        ("--line", "door:0.5,0,0.5,x", "must be numbers"),
        ("--line", "door:0.5,0,0.5,1.5", "between 0 and 1"),
        ("--line", "door:0.5,0.5,0.5,0.5", "two distinct points"),
        ("--zone", "hall:0,0,1,0", "--zone 'hall:0,0,1,0': expected NAME:x1,y1"),
        ("--zone", "hall:0,0,1,0,1,1,0", "an even count"),
    ],
)
def test_malformed_geometry_is_one_line_error(pets: Path, option: str, value: str, needle: str) -> None:
    assert_one_line_error(run("track", pets, option, value), needle)


def test_large_frames_suggest_tiles_unless_they_are_on(capsys: pytest.CaptureFixture[str]) -> None:
    from keeneye.cli.track import _suggest_tiles
    from keeneye.config import Settings

    settings = Settings()
    _suggest_tiles(1920, 1080, settings)
    assert "KEENEYE_PERSONS__TILE_PX=960" in capsys.readouterr().err
    _suggest_tiles(640, 480, settings)
    tiled = settings.model_copy(update={"persons": settings.persons.model_copy(update={"tile_px": 960})})
    _suggest_tiles(1920, 1080, tiled)
    assert capsys.readouterr().err == ""
