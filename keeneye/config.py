"""Settings, loaded once at the entry point and passed down.

Every field has a default and a description; environment variables with the ``KEENEYE_`` prefix
override them (nested fields with ``__``, e.g. ``KEENEYE_FACES__EMBEDDER__KIND=human-faceres``).

One module of ~850 lines, on purpose: it is the table of every setting with its default and its
description, from which docs/configuration.md is generated (keeneye.config_docs); most of its lines are
those descriptions, and one table is how an operator and a reviewer read it.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorSettings(_Strict):
    kind: Literal["blazeface", "mtcnn", "scrfd", "yunet"] = Field(
        "mtcnn",
        description="Face detector: the bundled MTCNN (the default for photos: finds small, turned and dim "
        "faces, best measured on WIDER FACE; ~70 ms per 640x480 photo on one core) or BlazeFace (the "
        "default for video frames, faces.video_detector: ~9 ms, but misses faces under ~40 px and many "
        "turned or dim ones), or a user-supplied SCRFD/YuNet ONNX file (docs/models.md)",
    )
    path: Path | None = Field(None, description="ONNX file for user-supplied detectors (scrfd, yunet)")
    score_threshold: float = Field(
        0.65,
        ge=0,
        le=1,
        description="Minimum raw detector score (0-1) to keep a face; when unset, the kind's measured "
        "default: MTCNN 0.9, chosen on the WIDER tuning half (precision 0.98 there; 0.92 at the reference's "
        "0.7, which also kept a tuft of hair in a portrait; no false face on the no-face photos), BlazeFace "
        "and user-supplied models 0.65 (chosen on dlib's annotated photos and the no-face set). See "
        "docs/models.md",
    )
    min_face_px: int = Field(
        16, ge=1, description="Faces whose box is smaller than this (either side) are dropped"
    )
    pad_retry: float = Field(
        0.5,
        ge=0,
        le=2,
        description="When no face is found, look again in a small copy of the image with a black border of "
        "this fraction of its long side on every side (finds faces that fill the frame: aligned or passport "
        "crops; UTKFace's 200x200 crops: 90.8 % found without, 99.9 % with 0.5); 0: never. Costs one "
        "more detector pass on images without a face; video frames never do it (docs/models.md)",
    )
    tile_px: int | None = Field(
        None,
        ge=64,
        description="Also run the detector over overlapping square tiles of this many pixels and merge "
        "(finds faces too small for one whole-image pass; costs one pass per tile); unset: whole image only",
    )
    calibrate: bool = Field(
        True,
        description="Report each face's score as the calibrated probability that it is a face "
        "(Rekognition's Confidence; keeneye/analysis/detector_calibration.json) instead of the raw score",
    )
    mtcnn_min_face_px: float = Field(
        16.0,
        ge=4,
        description="MTCNN: the smallest face its image pyramid looks for, pixels (16: best hard-face AP on "
        "the WIDER tuning half; 20 is about 1.5x faster; the cost grows as (1 / this) squared)",
    )
    mtcnn_full_scale_pixels: int | None = Field(
        2_359_296,
        ge=4096,
        description="MTCNN: on images of more pixels than this (2,359,296 = 1536x1536; a 1920x1080 frame is "
        "under it), the smallest face looked for grows with the image's side (x sqrt(pixels / this)), so one "
        "photo costs at most about what it costs at this size instead of growing with its pixels (a 12 MP "
        "photo: ~4x the time at 16 px; with the cap, faces from ~36 px there; Rekognition's own minimum "
        "face, 40 px at 1920x1080, grows with larger images too). Every WIDER FACE photo measured (at most "
        "1024x2093) is under it. Unset: mtcnn_min_face_px at any size",
    )
    mtcnn_stage_thresholds: tuple[float, float] = Field(
        (0.6, 0.7), description="MTCNN: the P-Net and R-Net candidate thresholds (0-1) of its cascade"
    )

    @model_validator(mode="before")
    @classmethod
    def _kind_threshold(cls, data: Any) -> Any:
        """An unset score_threshold takes the chosen kind's measured default (see its description)."""
        if isinstance(data, dict) and data.get("score_threshold") is None:
            data = {k: v for k, v in data.items() if k != "score_threshold"}
            kind = data.get("kind", cls.model_fields["kind"].default)
            data["score_threshold"] = DETECTOR_THRESHOLDS.get(str(kind), 0.65)
        return data


class VideoDetectorSettings(DetectorSettings):
    kind: Literal["blazeface", "mtcnn", "scrfd", "yunet"] = Field(
        "blazeface",
        description="Face detector for video frames: the bundled BlazeFace (the default: ~9 ms per 640x480 "
        "frame on one core; finds faces from ~40 px, so it trades small faces for speed) or MTCNN (finds "
        "faces from 16 px at ~8x the time on every analysed frame), or a user-supplied SCRFD/YuNet ONNX file "
        "(docs/models.md)",
    )


DETECTOR_THRESHOLDS: dict[str, float] = {"mtcnn": 0.9, "blazeface": 0.65}
"""Each bundled detector's measured raw-score threshold (docs/models.md)."""


class EmbedderSettings(_Strict):
    kind: Literal["dlib+faceres", "dlib-resnet", "human-faceres", "arcface", "sface"] = Field(
        "dlib+faceres",
        description="Face descriptor: the fusion of the bundled dlib ResNet and human FaceRes (default), "
        "either one alone, or a user-supplied ArcFace/SFace file",
    )
    path: Path | None = Field(None, description="ONNX file for user-supplied embedders (arcface, sface)")
    flip_tta: bool = Field(
        True, description="dlib: average the descriptor of the face and its mirror image (better accuracy)"
    )
    fusion_weights: tuple[float, float] = Field(
        (0.83, 0.17),
        description="dlib+faceres: weights of the two cosines in the fused score (chosen on LFW, "
        "see docs/models.md); changing them starts a new vector space (new embedder id)",
    )


class AttributeSettings(_Strict):
    expression: Literal["faceapi", "fer", "human", "none"] = Field(
        "faceapi",
        description="Facial expression model (apparent expression, not inner emotion): face-api's "
        "expression net (default), fer's mini-Xception or human's emotion model (docs/models.md)",
    )
    age_gender: Literal["faceapi+faceres", "faceapi", "faceres", "none"] = Field(
        "faceapi+faceres",
        description="AgeRange from face-api's age/gender net and Gender from the mean of its and human "
        "faceres's (default), either model alone, or none (docs/models.md)",
    )
    mesh: bool = Field(
        True, description="Dense landmarks (human facemesh): Landmarks, Pose, EyesOpen, MouthOpen"
    )

    @field_validator("age_gender", mode="before")
    @classmethod
    def _age_gender_bool(cls, value: object) -> object:
        """Settings written before the choice was a name said true (faceres) or false (none)."""
        if isinstance(value, bool):
            return "faceres" if value else "none"
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return "faceres" if value.strip().lower() == "true" else "none"
        return value


class FacesSettings(_Strict):
    detector: DetectorSettings = Field(
        default_factory=DetectorSettings,
        description="Face detection in photos (DetectFaces, IndexFaces, searches, CompareFaces, enrolment)",
    )
    video_detector: VideoDetectorSettings = Field(
        default_factory=VideoDetectorSettings,
        description="Face detection in video frames (stored-video jobs, stream processors, keeneye track / "
        "watch, video redaction; photo redaction adds its faces to MTCNN's): BlazeFace by default, the fast "
        "setting that trades recall for speed (faces from "
        "~40 px; MTCNN would cost ~8x the time on every analysed frame, docs/models.md)",
    )
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings, description="Face descriptor")
    attributes: AttributeSettings = Field(default_factory=AttributeSettings, description="Face attributes")
    track_fusion: int = Field(
        3,
        ge=1,
        le=3,
        description="Face tracks in video and streams are searched with the normalised mean of the "
        "descriptors of their best this-many faces (by face quality); 1: each face searched alone, the best "
        "result kept. On LFW (bench/lfw_track_fusion.py) a 3-photo track's FNIR at FPIR 1 % is 7.6 % fused, "
        "13.0 % with the best of 3 searches; the fused score is scaled so that Similarity 80 keeps the "
        "single-face false-match rate (docs/models.md)",
    )


class VectorIndexSettings(_Strict):
    kind: Literal["auto", "numpy", "faiss"] = Field(
        "auto",
        description="The vector index of each collection (docs/vector-index.md): numpy: exact scan of the "
        "full float32 vectors, all in RAM (4.6 GB per million 1152-float faces); faiss: IVF-PQ candidates "
        "re-ranked exactly on the full vectors, read from a memory-mapped file; auto: numpy below "
        "`faiss_above` faces, faiss from there",
    )
    faiss_above: int = Field(
        20_000,
        ge=0,
        description="auto: collections of at least this many faces use the faiss index (rebuilt from the "
        "database when they cross it); measured: the exact scan of 1152-float vectors costs ~6 ms at 20k "
        "faces and 29 ms at 100k on one core",
    )
    pq_bytes: int = Field(
        64,
        ge=1,
        description="faiss: bytes of 4-bit product-quantisation codes per face in RAM (twice this must "
        "divide `pca_dims`); more bytes, better candidates",
    )
    pca_dims: int = Field(
        256,
        ge=8,
        description="faiss: the first stage works on the vectors' main components, rotated at random "
        "(PCA): the dlib part of the default vector holds ~83 % of its energy in 128 of 1152 floats, and "
        "quantised as it is, the exact top 10 of LFW faces were among 256 candidates 88 % of the time, "
        "99.8 % with PCA to 256 (docs/vector-index.md)",
    )
    nprobe: int = Field(
        256,
        ge=1,
        description="faiss: inverted lists scanned per search (of ~sqrt(faces), at most 4096); at 1M faces "
        "(1024 lists) recall@1 against exact was 0.975 with 64, 0.993 with 128, 0.999 with 256 "
        "(bench/vector_index.py)",
    )
    rerank: int = Field(
        256,
        ge=1,
        description="faiss: candidates re-ranked exactly on the full vectors per search (at least MaxFaces)",
    )
    exact_below: int = Field(
        1_000,
        ge=0,
        description="faiss: a collection of at most this many faces is scanned exactly (too few to train on)",
    )
    train_size: int = Field(
        65_536,
        ge=1_024,
        description="faiss: faces sampled to train the quantisers when the index is built",
    )


class PersonsSettings(_Strict):
    kind: Literal["ensemble", "centernet", "nanodet", "movenet", "hog"] = Field(
        "ensemble",
        description="Person detector for video: 'ensemble' (default: CenterNet letterboxed + NanoDet-g, "
        "boxes merged by NMS; best recall at precision 0.8 on the COCO photos, docs/models.md), one of "
        "human's CenterNet, NanoDet-g or MoveNet MultiPose (COCO, class person) alone, or OpenCV's HOG "
        "people detector (no model file; the baseline)",
    )
    score_threshold: float = Field(
        0.4,
        ge=0,
        le=1,
        description="Minimum person score (0-1) to start or keep a track on its own (the tracker's high "
        "score; lower scores down to the detection floor still feed its low-score stage). 0.4: where "
        "the default ensemble's precision is >= 0.80 on the COCO photos (chosen there, not on the "
        "videos it is judged on; bench/persons.py). HOG: a logistic of the SVM margin, whose own cut "
        "(margin 0) is 0.5, so values below 0.5 change nothing",
    )
    birth_score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Slow births: a person scoring at least this (but under score_threshold) in every "
        "analysed frame for a second becomes a track (people standing still at a modest score). Unset: "
        "off, the default, because on PETS09 0.25 more than doubled false tracks (keeneye/tracking/"
        "tracker.py)",
    )
    confirm_score: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A new track is reported only once the median of its detection scores reaches this "
        "(as Frigate's 'threshold'): a false box that keeps scoring just over score_threshold (a traffic "
        "cone, a coat) never becomes a track. 0.5: chosen on CAVIAR's shop entrance (false tracks there "
        "median 0.29-0.39, people 0.57-0.62), judged on PETS09 and MOT17 (docs/models.md); 0: off",
    )
    input_size: int = Field(
        512,
        ge=32,
        multiple_of=32,
        description="CenterNet and MoveNet: long side of the letterboxed model input, pixels (a multiple "
        "of 32). Larger finds smaller people at quadratic cost (NanoDet's input is fixed at 416)",
    )
    tile_px: int | None = Field(
        None,
        ge=512,
        description="High-resolution video: also run the detector on overlapping square tiles of this "
        "many pixels (and merge with NMS), so people who are small next to the frame are seen larger. "
        "960 for 1080p: on MOT17's 1920x1080 frames person recall at 0.4 goes from 0.22 to 0.56 "
        "(precision 0.81 -> 0.86) and MOT17-04's MOTA from 0.10 to 0.49, at ~7x the detection cost (7 "
        "passes a frame; an 8K frame, the largest a job decodes, 67); frames no larger than the tile get the "
        "one whole-frame pass. At least 512, the models' own input: smaller tiles only enlarge pixels. "
        "Unset: off (the default: no labelled set here but MOT17 has large frames, so it is not chosen "
        "by measurement; docs/models.md)",
    )
    resize: Literal["letterbox", "stretch"] = Field(
        "letterbox",
        description="CenterNet: 'letterbox' keeps the frame's aspect ratio; 'stretch' squashes it to "
        "512x512 as human.js does (measured worse on the COCO photos)",
    )
    nanodet_canvas: Literal["square", "fit"] = Field(
        "square",
        description="NanoDet: 'square' letterboxes frames into its 416x416 input; 'fit' into a canvas of "
        "the frame's own aspect (416x320 for 4:3: ~30 % less NanoDet time, ~12 % less ensemble CPU on "
        "PETS09) with nearly the same boxes, but measured slightly worse on the COCO photos (the tuning "
        "set), so not the default (docs/models.md)",
    )
    ensemble: tuple[Literal["centernet", "nanodet", "movenet"], ...] = Field(
        ("centernet", "nanodet"),
        min_length=1,
        description="Members of the 'ensemble' detector, each with its own model",
    )
    detect_every: int = Field(
        2,
        ge=1,
        description="Run the detector on every Nth analysed frame; the tracker predicts the frames "
        "between (keeneye/pipeline/schedule.py). 2: the cheapest schedule that keeps CAVIAR's MOTA and "
        "IDF1 within 0.02 of every frame (25 fps; every 3rd does not): 3.2x real time on PETS09 on 2 "
        "cores against 1.6x for every frame (docs/models.md); 1: every frame",
    )
    motion_gating: bool = Field(
        False,
        description="Skip detection on frames where nothing moved since the last detection (a frame "
        "difference, as Frigate does); tracks are predicted instead, and a detection still runs at "
        "least every 'max_skip_ms'",
    )
    max_skip_ms: float = Field(
        150.0,
        gt=0,
        description="A frame this long (ms) or longer after the last detection is always detected, "
        "whatever detect_every and motion gating say. 150: frames are skipped only at more than ~6.7 "
        "analysed frames a second, so detections stay at most 200 ms apart at 10 fps (the widest gap "
        "measured, PETS09 every 2nd frame) and a stored-video job sampled at 5 fps detects every frame; "
        "raise it (e.g. 1000) with motion gating, to let still scenes go undetected for longer",
    )
    target_fps: float | None = Field(
        None,
        gt=0,
        description="Frames per second analysed from a video (frames are sampled down to this rate); "
        "unset: every decoded frame",
    )
    hog_upscale: float = Field(
        2.0,
        gt=0,
        description="HOG only: frames are enlarged this much first (its window is 64x128 pixels, so "
        "people shorter than 128/hog_upscale pixels are missed)",
    )
    shot_cut_threshold: float | None = Field(
        45.0,
        gt=0,
        description="Edited videos: a change score (PySceneDetect's content score, 0-255) between two "
        "analysed frames at or above this is a shot cut, and no track continues across it (45: above "
        "camera pans at 5 fps, below real cuts, see keeneye/video/cuts.py; fixed cameras score < 10); "
        "unset: never",
    )


class VideoJobSettings(_Strict):
    workers: int = Field(
        1, ge=0, description="Threads running stored-video jobs (StartPersonTracking ...); 0: jobs queue only"
    )
    target_fps: float = Field(
        5.0,
        gt=0,
        description="Frames per second a stored-video job analyses (5: the 79.5 s PETS09 video, 10 fps, "
        "takes about 20 s on 2 cores; Timestamps are the sampled frames' container times)",
    )
    max_duration_s: float | None = Field(
        None, gt=0, description="Analyse at most this many seconds of each job's video; unset: all of it"
    )
    max_bytes: int = Field(
        10 * 1024**3,
        ge=1,
        description="Largest video a job reads (bytes; 10 GiB: Rekognition's limit): a larger file or S3 "
        "object is refused at Start* with VideoTooLargeException, one that grew after Start fails its job",
    )
    max_pixels: int | None = Field(
        7680 * 4320,
        ge=1,
        description="Largest frame (width x height from the stream header) a job decodes; a larger video "
        "fails its job before any frame is decoded (default: 8K UHD); unset: no limit",
    )
    lease_s: float = Field(
        30.0,
        gt=0,
        description="How long a worker's claim on a running job holds without renewal, seconds (renewed "
        "every third of it): when its server dies, another server sharing the database resumes the job "
        "after this",
    )
    poll_interval_s: float = Field(
        2.0,
        gt=0,
        description="How often idle workers look in the database for jobs (started through another server, "
        "or whose lease expired), seconds; jobs started through this server are taken at once",
    )
    ray_address: str | None = Field(
        None,
        description="A Ray cluster's address (host:port of its head): PersonTracking and Redaction jobs then "
        "run as Ray tasks on a node with room, retried on another node when theirs dies "
        "(keeneye/service/video/ray_jobs.py; the nodes need keeneye, its models and the videos' and data "
        "directory's paths). Unset: on this machine",
    )


class NotificationSettings(_Strict):
    timeout_s: float = Field(
        10.0,
        gt=0,
        description="Bound on one delivery attempt (webhook request; MQTT connect, publish and "
        "acknowledgement), seconds",
    )
    retry_initial_s: float = Field(
        2.0, gt=0, description="Wait before the first retry of a failed delivery, seconds (doubles each time)"
    )
    retry_max_s: float = Field(
        300.0,
        gt=0,
        description="Longest wait between retries, seconds; undelivered messages are retried at this "
        "pace until they are delivered (they are never dropped)",
    )
    poll_s: float = Field(
        5.0,
        gt=0,
        description="How often the delivery thread looks for due messages when nothing wakes it, seconds",
    )


class RetentionSettings(_Strict):
    job_results_days: float | None = Field(
        None,
        gt=0,
        description="Stored-video jobs (their results: tracks, faces, identifications) are deleted this "
        "many days after they ended; unset: kept until deleted otherwise. Per-collection face "
        "retention is set on the collection (`keeneye collections set-retention`)",
    )
    notifications_days: float | None = Field(
        None,
        gt=0,
        description="Delivered notification-outbox messages are deleted this many days after delivery "
        "(undelivered ones are never purged); unset: kept as the delivery history",
    )
    stream_events_days: float | None = Field(
        30.0,
        gt=0,
        description="Stream processors' line crossings and zone visits kept for the console's timeline "
        "are deleted this many days after they happened (their records went to the sinks); unset: kept",
    )
    purge_interval_s: float = Field(
        3600.0,
        gt=0,
        description="How often `keeneye serve` runs the retention purge in the background, seconds "
        "(also once at start); `keeneye purge` runs it at once",
    )


class UploadSettings(_Strict):
    retry_initial_s: float = Field(
        2.0,
        gt=0,
        description="Analysis on upload (docs/uploads.md): wait before the first retry of an event that "
        "failed for a transient reason (S3 unreachable), seconds; doubled at each retry",
    )
    retry_max_s: float = Field(
        300.0, gt=0, description="Longest wait between two retries of an event, seconds"
    )
    max_attempts: int = Field(
        10, ge=1, description="Attempts of an event before it is failed for good (transient failures only)"
    )
    sink_timeout_s: float = Field(
        10.0, gt=0, description="Bound on one delivery of a search rule's matches to its sink, seconds"
    )
    stable_s: float = Field(
        1.0,
        gt=0,
        description="`keeneye watch-folder`: a file is read once its size and time stayed the same this "
        "long, seconds",
    )


class StreamSettings(_Strict):
    max_processors: int = Field(
        4,
        ge=1,
        description="Stream processors that may run at once (each is a worker process with its own models); "
        "StartStreamProcessor past it is LimitExceededException",
    )
    target_fps: float = Field(
        10.0,
        gt=0,
        description="Frames per second a processor analyses (sampled on pts), unless its options say",
    )
    queue_frames: int = Field(
        4,
        ge=1,
        description="Frames a processor buffers between capture and analysis; when analysis falls behind "
        "the oldest is dropped (and counted) so records stay current",
    )
    worker_threads: int = Field(
        1,
        ge=1,
        description="Threads each processor's worker computes on (ONNX Runtime, OpenCV): processors run "
        "side by side, one process each, so 1 uses the cores best when several run (the server's 'threads' "
        "setting is for its own requests)",
    )
    face_detect_every: int = Field(
        2,
        ge=1,
        description="Face search on a live camera: run the face detector on every Nth analysed frame (2: "
        "5 detections a second at 10 fps); the face tracker predicts the frames between and a face is "
        "identified on the frames it is detected on (bench/live_face_steps.py, docs/streams.md: the same "
        "person named, 45 % less time per frame with the light per-frame description). Stored video "
        "detects on every analysed frame",
    )
    face_motion_gating: bool = Field(
        True,
        description="Face search on a live camera: also skip face detection on frames where nothing moved "
        "since the last detection (a frame difference, as for persons.motion_gating): on a camera looking at "
        "a still, empty room the detector runs once every 'face_max_skip_ms'",
    )
    face_max_skip_ms: float = Field(
        1000.0,
        gt=0,
        description="Face search on a live camera: longest time between two face detections when frames "
        "are skipped, milliseconds (someone standing still is seen again at least this often)",
    )
    record_interval_s: float = Field(
        10.0,
        gt=0,
        description="A track's record is repeated at most this often while its identity does not change, "
        "seconds (unless its options say)",
    )
    spool_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Records kept on disk per sink while the sink is down (bytes); past it the oldest are "
        "dropped and counted",
    )
    status_interval_s: float = Field(
        1.0, gt=0, description="How often a processor reports its state and counters to the server, seconds"
    )
    stop_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Time a stopping processor has to deliver queued records and exit before it is killed, "
        "seconds",
    )
    lease_s: float = Field(
        30.0,
        gt=0,
        description="How long a server's claim on the processors it runs holds without renewal, seconds "
        "(renewed every third of it, when it also looks for processors to take over or to stop): when it "
        "dies, another server sharing the database starts its processors after this",
    )
    ray_address: str | None = Field(
        None,
        description="A Ray cluster's address (host:port of its head): each running processor's worker is "
        "then a Ray actor on a node with room, started again on another node when its node dies "
        "(keeneye/streams/ray_supervisor.py; every node needs keeneye, its models and the data directory or "
        "database: docs/streams.md). Unset: worker processes on this machine",
    )
    ray_num_cpus: float = Field(
        1.0, gt=0, description="CPUs of a Ray node each processor's actor takes (with ray_address)"
    )
    ray_restarts: int = Field(
        3,
        ge=0,
        description="How often a session's worker lost with its Ray node (or process) is started again "
        "on another node before the processor is FAILED (with ray_address)",
    )


class ImageLimits(_Strict):
    max_bytes: int = Field(15 * 1024 * 1024, description="Largest encoded image accepted (bytes)")
    max_pixels: int = Field(
        40_000_000,
        description="Largest decoded image (width x height), checked from the header before decoding",
    )
    min_side_px: int = Field(
        80,
        ge=1,
        description="Rekognition API: smallest height and width accepted (pixels, from the header; 80: "
        "Rekognition's minimum); smaller images are InvalidParameterException",
    )
    max_analysed_pixels: int | None = Field(
        16_000_000,
        ge=1_000_000,
        description="Images larger than this (width x height) are decoded for face analysis at a reduced "
        "size, by the smallest whole factor that brings them under it (a JPEG by its decoder's 1/2-1/8 "
        "scaling, without decoding the full size): the detectors shrink every image to their input anyway "
        "(BlazeFace: 256 px), and Rekognition asks for faces proportionally larger than 40x40 pixels in "
        "images over 1920x1080. Bounding boxes and landmarks are ratios, so answers keep their meaning; "
        "faces under detector.min_face_px after the reduction are not found. 16 MP: a 12 MP photo is "
        "analysed whole, a 40 MP one at 1/2 (10 MP: 30 MB as RGB instead of 120). Redaction is not "
        "reduced (it answers the whole image). Unset: never reduced",
    )


class EgressRules(_Strict):
    """Where keeneye may connect for one kind of target; keeneye/streams/egress.py applies it."""

    public: bool = Field(
        True, description="Public Internet addresses (anything globally routable that no rule below names)"
    )
    private: bool = Field(
        False,
        description="Private networks: RFC 1918 (10/8, 172.16/12, 192.168/16), shared address space "
        "100.64/10 (carrier NAT, Tailscale) and IPv6 unique local fc00::/7",
    )
    allow: tuple[str, ...] = Field(
        (),
        description="Networks (CIDR, e.g. 127.0.0.1/32, 192.168.1.0/24) reachable even where a rule refuses "
        "them: loopback (refused by default), link-local 169.254/16 and fe80::/10, cloud metadata addresses, "
        "0.0.0.0/8, multicast and reserved ranges (always refused unless listed here); list exactly what "
        "you need. keeneye's own listening address and port stay refused",
    )
    deny: tuple[str, ...] = Field(
        (),
        description="Networks (CIDR) refused even where a rule above allows them (a router's admin page, a "
        "reverse proxy in front of keeneye); deny wins over allow",
    )

    @field_validator("allow", "deny")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(
                    f"{text!r} is not a network (CIDR such as 10.0.0.0/8 or 127.0.0.1/32)"
                ) from None
        return value


class CameraEgress(EgressRules):
    private: bool = Field(
        True,
        description="Private networks: RFC 1918 (10/8, 172.16/12, 192.168/16), shared address space "
        "100.64/10 (carrier NAT, Tailscale) and IPv6 unique local fc00::/7; allowed for cameras by default "
        "(cameras on the LAN are the normal case)",
    )


class SinkEgress(EgressRules):
    private: bool = Field(
        False,
        description="Private networks: RFC 1918 (10/8, 172.16/12, 192.168/16), shared address space "
        "100.64/10 and IPv6 unique local fc00::/7; refused for sinks by default (a webhook or MQTT URL must "
        "not reach the LAN's services): set true, or list the broker's network in allow",
    )


class EgressSettings(_Strict):
    cameras: CameraEgress = Field(
        default_factory=CameraEgress,
        description="Cameras keeneye pulls from: registered cameras and stream-processor Input URLs "
        "(rtsp, rtsps, rtmp, rtmps, http, https)",
    )
    sinks: SinkEgress = Field(
        default_factory=SinkEgress,
        description="Where records and messages go: webhooks and MQTT brokers of data streams, "
        "stream-processor Output URLs, notification channels and upload-rule sinks",
    )


class ServerSettings(_Strict):
    host: str = Field("127.0.0.1", description="Address `keeneye serve` listens on (--host)")
    port: int = Field(8000, ge=0, le=65535, description="TCP port `keeneye serve` listens on (--port)")
    buckets: dict[str, Path] = Field(
        default_factory=dict,
        description="S3Object buckets served from local folders: name -> folder (--bucket NAME=FOLDER); "
        'as JSON in the environment, e.g. \'{"photos": "/srv/photos"}\'',
    )
    s3_endpoint: str | None = Field(
        None,
        description="S3-compatible endpoint for buckets not mapped to a folder (--s3-endpoint); "
        "credentials from the standard AWS variables",
    )
    max_body_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted (bytes); refused before it is read in full",
    )
    max_inflight: int = Field(
        8,
        ge=1,
        description="Requests analysed at once, POST /, POST /v1/redact and enrolments "
        "(POST /v1/collections/.../photos) together; more get ThrottlingException (boto3 retries them), "
        "HTTP 429 on /v1",
    )
    max_pixels_inflight: int = Field(
        120_000_000,
        ge=1_000_000,
        description="Image pixels decoded or being analysed at once, server-wide (every image of every "
        "analysing route: the Rekognition operations, POST /v1/redact, analysis on upload): an image "
        "takes its pixels as decoded (after any reduction, images.max_analysed_pixels) before decoding "
        "and holds them until its analysis is done; one that does not fit gets ThrottlingException "
        "(HTTP 429 on /v1; an upload event is retried). A pixel costs 1-4 bytes while it is decoded, 3 "
        "once RGB; 120 MP: three 40 MP images decoding at once, 1.3 GB at the peak for 8 worst-case "
        "requests at once on a server of 0.35 GB (docs/limits.md). An image over the whole budget is "
        "admitted only alone",
    )
    max_unauthenticated_body_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Request-body bytes held at once, server-wide, for callers whose signature is not "
        "verified yet (SigV4 signs the body, so it is read before it can be checked; its headers are "
        "checked first: format, date, a known and enabled access key; a Bearer token is checked before "
        "any body is read). Past it a request gets ThrottlingException (HTTP 429 on /v1) and its "
        "connection is closed. 64 MiB: three 20 MiB bodies, or nine requests with a 5 MB image (6.7 MB in "
        "base64)",
    )
    body_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Time allowed to receive a request's whole body, seconds; a slower client gets "
        "RequestTimeoutException (HTTP 408) and its connection is closed (slow-loris uploads)",
    )
    rate_limit_per_s: float = Field(
        50.0,
        ge=0,
        description="Requests per second each access key may make on average (a token bucket per key; "
        "over it: ThrottlingException, HTTP 429 on /v1); 0 turns per-key rate limiting off",
    )
    rate_limit_burst: int = Field(
        100,
        ge=1,
        description="Requests an access key may make at once before rate_limit_per_s applies "
        "(the token bucket's size)",
    )
    token_ttl_s: float = Field(
        900.0,
        ge=60,
        description="How long a native-API token (POST /v1/tokens) lasts when the request does not say "
        "(seconds; 900: 15 minutes)",
    )
    token_max_ttl_s: float = Field(
        43_200.0,
        ge=60,
        description="The longest a native-API token may be asked to last (seconds; 43200: 12 hours)",
    )
    console_session_s: float = Field(
        28_800.0,
        ge=60,
        description="How long a web console sign-in lasts (/console; seconds; 28800: 8 hours). The session "
        "is a native-API token in an HttpOnly, SameSite=Strict cookie; signing out ends it at once",
    )
    bearer_secret: bool = Field(
        True,
        description="Also accept a secret access key itself as `Authorization: Bearer <secret>` on /v1 "
        "(for clients that can send only a fixed header, such as MinIO's webhook notifications, and "
        "scripts written before tokens). false: /v1 takes SigV4 and tokens only (get one with "
        "`curl --aws-sigv4`)",
    )
    auth_failures_burst: int = Field(
        20,
        ge=0,
        description="Failed authentication attempts a client address (an IPv6 /64) may make before it "
        "must wait (HTTP 429 / ThrottlingException, every request of it); refilled at "
        "auth_failures_per_min; 0 turns the limit off",
    )
    auth_failures_per_min: float = Field(
        6.0, ge=0, description="Failed attempts a minute a client address gets back (see auth_failures_burst)"
    )
    auth_key_failures_burst: int = Field(
        100,
        ge=0,
        description="Failed authentication attempts naming one access key id (a SigV4 signature that does "
        "not verify, from any address) before requests naming it must wait; refilled at "
        "auth_key_failures_per_min; 0 turns the limit off. Whoever knows a key id can spend it, so it is "
        "five times the per-address budget",
    )
    auth_key_failures_per_min: float = Field(
        30.0, ge=0, description="Failed attempts a minute an access key id gets back"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KEENEYE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(
        Path("var"), description="Where models, databases and files live (KEENEYE_DATA_DIR)"
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the metadata database (e.g. postgresql+psycopg://user@host/keeneye; "
        "the driver must be installed); default: SQLite (WAL) at <data_dir>/keeneye.db",
    )
    threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads per model (0: runtime default)")
    faces: FacesSettings = Field(default_factory=FacesSettings, description="Face analysis pipeline")
    vector_index: VectorIndexSettings = Field(
        default_factory=VectorIndexSettings,
        description="How each collection's vectors are searched: exact, or approximate with an exact "
        "re-rank for millions of faces (docs/vector-index.md)",
    )
    images: ImageLimits = Field(default_factory=ImageLimits, description="Limits on input images")
    persons: PersonsSettings = Field(default_factory=PersonsSettings, description="Person detection in video")
    video_jobs: VideoJobSettings = Field(
        default_factory=VideoJobSettings, description="Stored-video jobs (Rekognition Start*/Get*)"
    )
    notifications: NotificationSettings = Field(
        default_factory=NotificationSettings,
        description="Delivery of job-completion notifications (NotificationChannel) to webhooks, MQTT, "
        "JSONL files",
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings,
        description="How long faces, job results and delivered notifications are kept "
        "(docs/accountability.md)",
    )
    uploads: UploadSettings = Field(
        default_factory=UploadSettings,
        description="Analysis on upload: S3 event notifications and `keeneye watch-folder` (docs/uploads.md)",
    )
    streams: StreamSettings = Field(
        default_factory=StreamSettings,
        description="Live stream processors (Rekognition's stream-processor API over cameras; "
        "docs/streams.md)",
    )
    models_path: Path | None = Field(
        None,
        description="Where the converted models are (KEENEYE_MODELS_PATH). Default: `<data_dir>/models` "
        "if models were installed there (older keeneye), else one folder shared by every data directory: "
        "`$XDG_DATA_HOME/keeneye/models` (`~/.local/share/keeneye/models`)",
    )
    server: ServerSettings = Field(
        default_factory=ServerSettings, description="The Rekognition-compatible server"
    )
    egress: EgressSettings = Field(
        default_factory=EgressSettings,
        description="What keeneye may connect to on a user's behalf (cameras, sinks); checked when a URL is "
        "registered and at every connection (docs/security.md). Not the operator's own --s3-endpoint, nor "
        "`keeneye watch` / `watch-folder`",
    )
    access_key_id: str | None = Field(
        None,
        description="Access key id clients sign with (KEENEYE_ACCESS_KEY_ID); if unset with the secret, "
        "`keeneye serve` creates a key pair once in `<data_dir>/credentials.json`",
    )
    secret_access_key: SecretStr | None = Field(
        None, description="Secret of that access key (KEENEYE_SECRET_ACCESS_KEY); never logged"
    )

    @property
    def models_dir(self) -> Path:
        """Where the converted models are: ``models_path``; else ``<data_dir>/models`` when models were
        installed there (older keeneye kept them with the data); else :func:`shared_models_dir`, so a
        fresh data directory serves at once with the models already installed."""
        if self.models_path is not None:
            return self.models_path
        legacy = self.data_dir / "models"
        if (legacy / "manifest.json").is_file():
            return legacy
        return shared_models_dir()

    @property
    def cache_dir(self) -> Path:
        """The downloaded weight packages, beside the models (``<models_dir>/../cache``)."""
        return self.models_dir.parent / "cache"


def shared_models_dir() -> Path:
    """The models folder every data directory of this user shares: ``$XDG_DATA_HOME/keeneye/models``,
    ``~/.local/share/keeneye/models`` without it (the XDG base-directory default)."""
    base = os.environ.get("XDG_DATA_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "keeneye" / "models"
