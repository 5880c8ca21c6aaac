"""Open-set 1:N identification on LFW (faces/lfw_protocol/identification_protocol.csv).

Gallery: one photo of each of 423 people (the watchlist). Known probes: their 3,345 other photos.
Unknown probes: 4,047 photos of people not on the watchlist. Reports rank-1 identification rate and
FNIR at FPIR = 1 % (threshold set so that 1 % of unknown probes get any gallery hit; a known probe
fails when its mate is not the top hit above that threshold), for raw cosine and for cohort
(impostor) score normalisation, per embedder and for a fusion of two embedders.

Template sizes (``multi_enrolment_raw_cosine``): 1, 2, 3 and 5 enrolment photos per person (the
gallery photo plus the person's first known probes), as a mean template and as the best score over
the photos, all scored on the same remaining known probes; see ``multi_enrolment``.

Cohort: LFW images in faces/lfw/ that the protocol does not use, excluding, for each probe, cohort
images of the probe's own identity (leave-identity-out), so no probe is normalised against itself.

Usage: python bench/lfw_identification.py [--variants ...] [--cohort-k 50] [--no-cohort]
       [--template-sizes 1,2,3,5]
"""

from __future__ import annotations

import argparse
import csv

import numpy as np
from common import LFW, PROTOCOL, SHARED, embed_images, emit, settings
from variants import VARIANTS

from keeneye.analysis.builder import build_face_analyzer


def load_protocol() -> dict[str, list[tuple[str, str]]]:
    roles: dict[str, list[tuple[str, str]]] = {"gallery": [], "probe_known": [], "probe_unknown": []}
    with (PROTOCOL / "identification_protocol.csv").open() as f:
        for row in csv.DictReader(f):
            roles[row["role"]].append((row["identity"], "faces/lfw/" + row["image"]))
    return roles


def cohort_images(used: set[str]) -> list[tuple[str, str]]:
    out = []
    for p in sorted(LFW.glob("*/*.jpg")):
        rel = str(p.relative_to(SHARED))
        if rel not in used:
            out.append((p.parent.name, rel))
    return out


def fnir_at_fpir(
    known: np.ndarray, known_ok: np.ndarray, unknown_max: np.ndarray, fpir: float
) -> tuple[float, float]:
    """known: top score per known probe; known_ok: top hit is the mate; unknown_max: top score per unknown."""
    t = float(np.quantile(unknown_max, 1.0 - fpir, method="higher"))
    t = np.nextafter(t, np.inf)  # strictly above: exactly `fpir` of unknowns (or fewer) pass
    return float(np.mean(~(known_ok & (known >= t)))), t


def cohort_norm(
    scores: np.ndarray, probe_cohort: np.ndarray, gallery_cohort: np.ndarray, k: int
) -> np.ndarray:
    """Symmetric top-k cohort normalisation: average of probe-side and gallery-side z-scores."""
    pc = -np.sort(-probe_cohort, axis=1)[:, :k]
    gc = -np.sort(-gallery_cohort, axis=1)[:, :k]
    zp = (scores - pc.mean(1, keepdims=True)) / (pc.std(1, keepdims=True) + 1e-6)
    zg = (scores - gc.mean(1)[None, :]) / (gc.std(1)[None, :] + 1e-6)
    return 0.5 * (zp + zg)


def evaluate(scores_known: np.ndarray, scores_unknown: np.ndarray, mate: np.ndarray) -> dict[str, float]:
    top = scores_known.argmax(1)
    known_ok = top == mate
    res = {"rank1": float(np.mean(known_ok))}
    for fpir in (0.01, 0.001):
        fnir, t = fnir_at_fpir(scores_known.max(1), known_ok, scores_unknown.max(1), fpir)
        res[f"fnir_at_fpir_{fpir:g}"] = fnir
        res[f"threshold_at_fpir_{fpir:g}"] = float(t)
    return res


TEMPLATE_SIZES = (1, 2, 3, 5)


def _per_identity_max(scores: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Photo-level scores (columns grouped by identity, group k starting at starts[k]) -> the best
    score per identity."""
    return np.maximum.reduceat(scores, starts, axis=1)


def multi_enrolment(
    proto: dict[str, list[tuple[str, str]]],
    emb: dict[str, np.ndarray],
    sizes: tuple[int, ...] = TEMPLATE_SIZES,
) -> dict[str, object]:
    """Several enrolment photos per identity (template sizes ``sizes``, in photos per person).

    The first ``max(sizes) - 1`` known probes of each gallery identity are taken out as potential
    enrolment photos (someone with fewer known probes uses what they have); a template of size ``n``
    is the protocol's gallery photo plus the first ``n - 1`` of them. Every size is scored on the
    SAME remaining known probes and on all unknown probes, so the sizes are compared fairly. Two
    template strategies: ``mean`` (the normalised mean of the photos' descriptors, one vector per
    person) and ``max`` (a person's score is the best cosine to any of their photos). Both are
    reported on the same LFW protocol: a measurement, not a choice tuned on it."""
    taken = max(sizes) - 1
    gallery_ids = [i for i, _ in proto["gallery"]]
    index = {name: k for k, name in enumerate(gallery_ids)}
    enrol: dict[str, list[str]] = {i: [] for i in gallery_ids}
    probes: list[tuple[str, str]] = []
    for identity, img in proto["probe_known"]:
        if len(enrol[identity]) < taken:
            enrol[identity].append(img)
        else:
            probes.append((identity, img))
    mate = np.array([index[i] for i, _ in probes])
    pk = np.stack([emb[img] for _, img in probes])
    pu = np.stack([emb[img] for _, img in proto["probe_unknown"]])
    out: dict[str, object] = {
        "enrolment_photos_taken_per_identity": taken,
        "probes": {
            "known": len(probes),
            "known_identities": len({i for i, _ in probes}),
            "unknown": len(pu),
        },
        "identities_with_template_size": {
            str(n): sum(1 + len(enrol[i]) >= n for i in gallery_ids) for n in sizes
        },
    }
    for strategy in ("mean", "max"):
        per_size: dict[str, dict[str, float]] = {}
        for n in sizes:
            photos = [[g_img, *enrol[identity][: n - 1]] for identity, g_img in proto["gallery"]]
            if strategy == "mean":
                rows = []
                for imgs in photos:
                    mean = np.mean([emb[i] for i in imgs], axis=0)
                    rows.append(mean / np.linalg.norm(mean))
                g = np.stack(rows)
                sk, su = pk @ g.T, pu @ g.T
            else:
                flat = np.stack([emb[i] for imgs in photos for i in imgs])
                starts = np.cumsum([0] + [len(imgs) for imgs in photos[:-1]])
                sk = _per_identity_max(pk @ flat.T, starts)
                su = _per_identity_max(pu @ flat.T, starts)
            per_size[f"{n}_photo" if n == 1 else f"{n}_photos"] = evaluate(sk, su, mate)
        out[strategy] = per_size
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--fuse", default="dlib-resnet+flip,human-faceres")
    ap.add_argument("--cohort-k", type=int, default=50)
    ap.add_argument(
        "--no-cohort",
        action="store_true",
        help="skip cohort normalisation (and the fusion, which uses it): no cohort images embedded",
    )
    ap.add_argument(
        "--template-sizes",
        default=",".join(str(n) for n in TEMPLATE_SIZES),
        help="enrolment photos per person compared by multi_enrolment",
    )
    args = ap.parse_args()
    sizes = tuple(int(n) for n in args.template_sizes.split(","))
    proto = load_protocol()
    used = {img for rows in proto.values() for _, img in rows}
    cohort = [] if args.no_cohort else cohort_images(used)
    gallery_ids = [i for i, _ in proto["gallery"]]
    index = {name: k for k, name in enumerate(gallery_ids)}
    mate = np.array([index[i] for i, _ in proto["probe_known"]])
    cohort_ids = np.array([i for i, _ in cohort])
    results: dict[str, object] = {
        "protocol": "identification_protocol.csv: 423 gallery, 3345 known probes, 4047 unknown probes",
        "cohort": (
            "skipped (--no-cohort)"
            if args.no_cohort
            else {"images": len(cohort), "k": args.cohort_k, "rule": "leave-identity-out"}
        ),
        "variants": {},
    }
    normalised: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    all_images = [SHARED / img for rows in (*proto.values(), cohort) for _, img in rows]
    for name in args.variants.split(","):
        analyzer = build_face_analyzer(settings(**VARIANTS[name]))
        emb, _ = embed_images(analyzer, all_images, f"lfw-{name}")

        def stack(rows: list[tuple[str, str]], emb: dict[str, np.ndarray] = emb) -> np.ndarray:
            return np.stack([emb[img] for _, img in rows])

        g, pk, pu = stack(proto["gallery"]), stack(proto["probe_known"]), stack(proto["probe_unknown"])
        sk, su = pk @ g.T, pu @ g.T
        entry: dict[str, object] = {"raw_cosine": evaluate(sk, su, mate)}
        entry["multi_enrolment_raw_cosine"] = multi_enrolment(proto, emb, sizes)
        results["variants"][name] = entry  # type: ignore[index]
        if args.no_cohort:
            continue
        c = stack(cohort)
        pkc, puc, gc = pk @ c.T, pu @ c.T, g @ c.T
        for probes, pc in ((proto["probe_known"], pkc), (proto["probe_unknown"], puc)):
            ids = np.array([i for i, _ in probes])
            pc[ids[:, None] == cohort_ids[None, :]] = -np.inf  # leave-identity-out
        gc[np.array(gallery_ids)[:, None] == cohort_ids[None, :]] = -np.inf
        nk = cohort_norm(sk, pkc, gc, args.cohort_k)
        nu = cohort_norm(su, puc, gc, args.cohort_k)
        entry["cohort_normalised"] = evaluate(nk, nu, mate)
        normalised[name] = (nk, nu)
    fuse = [f for f in args.fuse.split(",") if f in normalised]
    if len(fuse) == 2:
        nk = normalised[fuse[0]][0] + normalised[fuse[1]][0]
        nu = normalised[fuse[0]][1] + normalised[fuse[1]][1]
        results["variants"][f"fusion({fuse[0]}+{fuse[1]})"] = {"cohort_normalised": evaluate(nk, nu, mate)}  # type: ignore[index]
    emit(results)


if __name__ == "__main__":
    main()
