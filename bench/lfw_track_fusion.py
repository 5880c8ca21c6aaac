"""Probe-side fusion on LFW: is a track better searched with the mean of its best few face descriptors?

In video, a face track gives several crops of one person. keeneye searches a track with its faces; this
bench asks whether the normalised mean of up to K descriptors searches better than one descriptor or
than the best of K separate searches (what the identifier did before: the search whose top match is the
most similar wins). No labelled video with identities exists in ../shared/data, so a "track" here is
K photos of one LFW person (more varied than consecutive video frames: an upper bound of the gain).

Protocol (faces/lfw_protocol/identification_protocol.csv, the cached embeddings of
bench/lfw_identification.py): gallery = the protocol's one photo per watchlisted person; known tracks =
each gallery person's known probes in consecutive chunks of K (chunks shorter than K dropped, so every
strategy sees the same photos); unknown tracks = photos of people not on the watchlist (the protocol's
unknown probes, one per person, with the person's other LFW photos that the protocol does not use, the
cohort of bench/lfw_identification.py) chunked the same way: only 387 such people have 3 photos or
more, so FPIR 1 % rests on a few tracks at K = 3 and no K above 4 is possible.
Strategies per track: ``single`` (its first photo), ``max_of_searches`` (K searches, the best top
score wins), ``mean`` (one search with the normalised mean of the K descriptors). Reported: rank-1,
FNIR at FPIR 1 % and 0.1 % (per track), and at the operating point Similarity 80 (the calibrated
default FaceMatchThreshold): FNIR, FPIR and the impostor false-match rate per comparison, since the
calibration was fitted on single-photo pairs.

Usage: python bench/lfw_track_fusion.py [--variant dlib+faceres] [--k 2,3]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from common import _load, emit
from lfw_identification import cohort_images, evaluate, load_protocol

from keeneye.analysis.similarity import calibration_for

EMBEDDER_IDS = {
    "dlib+faceres": "dlib-resnet-v1+human-faceres@0.83:0.17",
    "dlib-resnet+flip": "dlib-resnet-v1",
    "human-faceres": "human-faceres",
}


def tracks(rows: list[tuple[str, str]], k: int) -> list[tuple[str, list[str]]]:
    """Each identity's photos (protocol order) in consecutive chunks of ``k``; shorter rests dropped."""
    by_id: dict[str, list[str]] = defaultdict(list)
    for identity, img in rows:
        by_id[identity].append(img)
    out = []
    for identity, imgs in by_id.items():
        for s in range(0, len(imgs) - k + 1, k):
            out.append((identity, imgs[s : s + k]))
    return out


def scores(
    strategy: str, chunks: list[tuple[str, list[str]]], emb: dict[str, np.ndarray], g: np.ndarray
) -> np.ndarray:
    """(tracks, gallery) cosine scores of each track under ``strategy``."""
    rows = []
    for _, imgs in chunks:
        vecs = np.stack([emb[i] for i in imgs])
        if strategy == "single":
            rows.append(vecs[0] @ g.T)
        elif strategy == "mean":
            mean = vecs.mean(0)
            rows.append((mean / np.linalg.norm(mean)) @ g.T)
        else:  # max_of_searches: the search whose top score is highest gives the track's scores
            s = vecs @ g.T
            rows.append(s[int(s.max(1).argmax())])
    return np.stack(rows)


def at_threshold(sk: np.ndarray, su: np.ndarray, mate: np.ndarray, cos80: float) -> dict[str, float]:
    top = sk.argmax(1)
    ok = (top == mate) & (sk.max(1) >= cos80)
    impostor = np.ones_like(sk, bool)
    impostor[np.arange(len(mate)), mate] = False
    return {
        "fnir_at_similarity_80": float(1 - ok.mean()),
        "fpir_at_similarity_80": float((su.max(1) >= cos80).mean()),
        "impostor_fmr_at_similarity_80": float(
            ((sk[impostor] >= cos80).sum() + (su >= cos80).sum()) / (impostor.sum() + su.size)
        ),
    }


def held_out(
    known: list[tuple[str, list[str]]],
    unknown: list[tuple[str, list[str]]],
    emb: dict[str, np.ndarray],
    g: np.ndarray,
    mate: np.ndarray,
    cos80: float,
    single_fmr: float,
) -> list[dict[str, object]]:
    """The scale fitted on one half of the people and judged on the other, both ways: watchlisted people
    split by their gallery position (even / odd), strangers by their name's order (even / odd); a half's
    known tracks are scored against its half of the gallery. The target false-match rate is the single
    photo's over all tracks (``single_fmr``), as for the committed scale."""
    strangers = sorted({i for i, _ in unknown})
    stranger_half = {name: n % 2 for n, name in enumerate(strangers)}
    sk_all, su_all = scores("mean", known, emb, g), scores("mean", unknown, emb, g)
    halves = []
    for h in (0, 1):
        cols = np.arange(len(g)) % 2 == h
        rows_k = cols[mate]
        rows_u = np.array([stranger_half[i] == h for i, _ in unknown])
        remap = np.cumsum(cols) - 1
        sk, su, m = sk_all[rows_k][:, cols], su_all[rows_u][:, cols], remap[mate[rows_k]]
        halves.append((sk, su, m))
    out = []
    for fit, judge in ((0, 1), (1, 0)):
        sk, su, m = halves[fit]
        impostor = np.ones_like(sk, bool)
        impostor[np.arange(len(m)), m] = False
        t = float(np.quantile(np.concatenate([sk[impostor], su.ravel()]), 1.0 - single_fmr, method="higher"))
        scale = cos80 / t
        sk, su, m = halves[judge]
        res: dict[str, object] = {"fit_on": ("even", "odd")[fit], "judged_on": ("even", "odd")[judge]}
        res["scale"] = scale
        res["judged"] = {"known_tracks": len(m), "unknown_tracks": len(su)}
        res.update(at_threshold(sk * scale, su * scale, m, cos80))
        res["single_photo_fmr_target"] = single_fmr
        out.append(res)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="dlib+faceres")
    ap.add_argument("--k", default="2,3")
    ap.add_argument(
        "--detector-tag", default="@mtcnn", help="cache name suffix of the photo detector ('' for BlazeFace)"
    )
    args = ap.parse_args()
    emb = _load(f"lfw-{args.variant}{args.detector_tag}")
    if not emb:
        raise SystemExit(f"no cached embeddings: run bench/lfw_identification.py --variants {args.variant}")
    proto = load_protocol()
    gallery_ids = [i for i, _ in proto["gallery"]]
    index = {name: n for n, name in enumerate(gallery_ids)}
    g = np.stack([emb[img] for _, img in proto["gallery"]])
    used = {img for rows in proto.values() for _, img in rows}
    watchlist = set(gallery_ids)
    strangers = [
        (i, img)
        for i, img in proto["probe_unknown"] + cohort_images(used)
        if i not in watchlist and img in emb
    ]
    cos80 = calibration_for(EMBEDDER_IDS[args.variant]).cosine_at(80.0)
    out: dict[str, object] = {
        "protocol": "LFW identification_protocol.csv gallery (1 photo/person); tracks = K probe photos",
        "variant": args.variant,
        "cosine_at_similarity_80": cos80,
        "per_k": {},
    }
    for k in (int(x) for x in args.k.split(",")):
        known, unknown = tracks(proto["probe_known"], k), tracks(strangers, k)
        mate = np.array([index[i] for i, _ in known])
        entry: dict[str, object] = {"known_tracks": len(known), "unknown_tracks": len(unknown)}
        single_fmr = 0.0
        for strategy in ("single", "max_of_searches", "mean"):
            sk, su = scores(strategy, known, emb, g), scores(strategy, unknown, emb, g)
            res = evaluate(sk, su, mate)
            res.update(at_threshold(sk, su, mate, cos80))
            entry[strategy] = res
            if strategy == "single":
                single_fmr = res["impostor_fmr_at_similarity_80"]
        # The fused cosine with the single photo's false-match rate at Similarity 80, and what the
        # fused search gives when its cosines are scaled so that this cosine reads as Similarity 80
        # (keeneye.pipeline.identification.fused_query): fitted and scored on the same tracks; the
        # held-out check below fits it on half of the people and judges it on the other half.
        sk, su = scores("mean", known, emb, g), scores("mean", unknown, emb, g)
        impostor = np.ones_like(sk, bool)
        impostor[np.arange(len(mate)), mate] = False
        pooled = np.concatenate([sk[impostor], su.ravel()])
        t = float(np.quantile(pooled, 1.0 - single_fmr, method="higher"))
        scale = cos80 / t
        res = evaluate(sk * scale, su * scale, mate)
        res.update(at_threshold(sk * scale, su * scale, mate, cos80))
        entry["mean_scaled"] = {"cosine_at_single_fmr": t, "scale": scale, **res}
        entry["mean_scaled_held_out"] = held_out(known, unknown, emb, g, mate, cos80, single_fmr)
        out["per_k"][str(k)] = entry  # type: ignore[index]
    emit(out)


if __name__ == "__main__":
    main()
