"""The faiss index (keeneye.store.faiss_index.FaissIndex) against the exact scan, at 1M faces and beyond.

What is measured (prints JSON; progress on stderr):

- **recall@1 / recall@10 against exact**: LFW probes (the first photo of each person with >= 2 photos,
  embedded with the default dlib+faceres embedder, 1152 floats) searched in a collection of the other
  LFW photos padded with ``--padding`` other faces; recall@1 = the index's top-1 id is the exact
  scan's, recall@10 = share of the exact top 10 in the index's top 10; scores are the exact cosines
  (re-ranked), checked equal to the exact scan's;
- **padding**: not random unit vectors (far too easy: their cosine to any face is ~0 +- 0.03), but
  samples of a Gaussian fitted to the real LFW embeddings (mean and full 1152 x 1152 covariance), each
  part (dlib, faceres) normalised back to its share of the fused vector: new "people" drawn from the
  population LFW's faces come from. ``padding_check`` compares their cosines to the probes with real
  impostors' (other LFW people);
- **search step**: p50 / p95 of ``FaissIndex.search`` for k = 1, 10 and 4096 (MaxFaces' ceiling), one
  thread, the full vectors read through the memory map (page cache warm: the file was just written);
- **memory per million faces**: resident anonymous memory (RssAnon) of the loaded index (codes, lists,
  ids), and separately the mapped file's pages the searches touched (RssFile: page cache, shared and
  reclaimable) and its size on disk; **build time** (training + encoding) and save / load times;
- **10M** (``--scale 10``): the compact stage at 10x the faces, measured with the 1M codes repeated
  10 times (faiss merge_from: the scan cost of 10M codes, not recall), plus the re-rank step measured at
  1M (its cost depends on the candidates, not the collection).

Usage: python bench/vector_index.py [--padding 1000000] [--probes 1000] [--scale 10] [--workdir DIR]
Needs ~2x padding x 4.6 KB of free disk in --workdir (default: a temporary folder, removed after).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread, as the server runs

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from common import LFW, SHARED, embed_images, emit, settings
from variants import VARIANTS

from keeneye.config import VectorIndexSettings
from keeneye.store.faiss_index import FaissIndex, _faiss, nlist_for

CHUNK = 50_000


def log(message: str) -> None:
    print(f"[vector_index] {message}", file=sys.stderr, flush=True)


def rss() -> dict[str, float]:
    """This process's resident memory, MiB: anonymous (heap, faiss) and file-backed (mapped files)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def ms(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.quantile(a, 0.95)), 3)}


def lfw_embeddings() -> tuple[np.ndarray, list[str]]:
    """(N, 1152) embeddings of every LFW photo (cached in <data_dir>/bench-cache) and each one's person."""
    paths = sorted(LFW.glob("*/*.jpg"))
    from keeneye.analysis.builder import build_face_analyzer

    cache = Path(settings().data_dir) / "bench-cache" / "lfw-dlib+faceres.npz"
    if cache.is_file():
        with np.load(cache) as z:
            have = set(z.files)
        if all(str(p.relative_to(SHARED)) in have for p in paths):
            with np.load(cache) as z:
                return np.stack([z[str(p.relative_to(SHARED))] for p in paths]), [
                    p.parent.name for p in paths
                ]
    emb, _ = embed_images(
        build_face_analyzer(settings(**VARIANTS["dlib+faceres"])), paths, "lfw-dlib+faceres"
    )
    return np.stack([emb[str(p.relative_to(SHARED))] for p in paths]), [p.parent.name for p in paths]


def split(people: list[str], probes: int) -> tuple[np.ndarray, np.ndarray]:
    """Probe rows (first photo of each person with >= 2) and gallery rows (all the others)."""
    rows: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(people):
        rows[p].append(i)
    probe = [r[0] for r in rows.values() if len(r) >= 2][:probes]
    taken = set(probe)
    return np.asarray(probe), np.asarray([i for i in range(len(people)) if i not in taken])


def gaussian_padding(real: np.ndarray, n: int, path: Path, dlib_dims: int = 128) -> np.ndarray:
    """``n`` samples of a Gaussian fitted to ``real``, each part renormalised to its share; a .npy memmap."""
    mu = real.mean(axis=0, dtype=np.float64)
    cov = np.cov(real, rowvar=False) + 1e-6 * np.eye(real.shape[1])
    chol = np.linalg.cholesky(cov).astype(np.float32)
    share = float(np.mean(np.linalg.norm(real[:, :dlib_dims], axis=1)))  # sqrt(w_dlib / sum w)
    out = np.lib.format.open_memmap(path, "w+", np.float32, (n, real.shape[1]))
    rng = np.random.default_rng(1)
    for lo in range(0, n, CHUNK):
        m = min(CHUNK, n - lo)
        z = (rng.standard_normal((m, real.shape[1]), dtype=np.float32) @ chol.T + mu).astype(np.float32)
        a, b = z[:, :dlib_dims], z[:, dlib_dims:]
        a *= share / np.linalg.norm(a, axis=1, keepdims=True)
        b *= np.sqrt(1 - share**2) / np.linalg.norm(b, axis=1, keepdims=True)
        out[lo : lo + m] = z
    out.flush()
    return out


def exact_top(probes: np.ndarray, parts: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact top-k rows (over the parts concatenated) and cosines of each probe, in chunks."""
    best_s = np.full((len(probes), 0), -np.inf, np.float32)
    best_i = np.zeros((len(probes), 0), np.int64)
    offset = 0
    for part in parts:
        for lo in range(0, part.shape[0], CHUNK):
            block = np.asarray(part[lo : lo + CHUNK])
            s = probes @ block.T
            top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
            best_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
            best_i = np.concatenate([best_i, top + offset + lo], axis=1)
            keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
            best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
        offset += part.shape[0]
    return best_i, best_s


def padding_check(
    probes: np.ndarray,
    probe_people: list[str],
    gallery: np.ndarray,
    gallery_people: list[str],
    padding: np.ndarray,
) -> dict[str, Any]:
    """Cosines of probes to real impostors vs to padding: the padding should look like other people."""
    s_real = probes @ gallery.T
    same = np.asarray(probe_people)[:, None] == np.asarray(gallery_people)[None, :]
    impostor = s_real[~same]
    s_pad = (probes @ np.asarray(padding[:20_000]).T).ravel()

    def stats(a: np.ndarray) -> dict[str, float]:
        return {q: round(float(np.quantile(a, float(q))), 4) for q in ("0.5", "0.99", "0.999")} | {
            "max": round(float(a.max()), 4)
        }

    return {
        "real_impostors": stats(impostor),
        "padding": stats(s_pad),
        "genuine_p50": round(float(np.median(s_real[same])), 4) if same.any() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--padding", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--scale", type=int, default=10, help="compact stage measured at this many x (0: skip)")
    ap.add_argument("--runs-4096", type=int, default=100)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--sweep", action="store_true", help="recall@1 and time for other nprobe / rerank")
    args = ap.parse_args()
    load_avg = os.getloadavg()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="keeneye-vi-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = run(args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    result["load_average_1_5_15"] = {
        "start": [round(x, 2) for x in load_avg],
        "end": [round(x, 2) for x in os.getloadavg()],
    }
    emit(result)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    vecs, people = lfw_embeddings()
    probe_rows, gallery_rows = split(people, args.probes)
    probes, gallery = vecs[probe_rows], vecs[gallery_rows]
    log(f"{len(probes)} probes, {len(gallery)} LFW gallery faces; padding {args.padding}")
    t = time.perf_counter()
    pad_path = work / "padding.npy"
    if pad_path.is_file() and np.load(pad_path, mmap_mode="r").shape[0] == args.padding:
        padding = np.load(pad_path, mmap_mode="r")
    else:
        padding = gaussian_padding(gallery, args.padding, pad_path)
    log(f"padding ready in {time.perf_counter() - t:.0f} s")
    check = padding_check(
        probes[:300],
        [people[i] for i in probe_rows[:300]],
        gallery,
        [people[i] for i in gallery_rows],
        padding,
    )
    t = time.perf_counter()
    want_i, want_s = exact_top(probes, [gallery, padding], 10)
    exact_s = time.perf_counter() - t
    log(f"exact top-10 of {len(probes)} probes in {exact_s:.0f} s")
    n = len(gallery) + args.padding
    ids = [f"lfw-{i}" for i in range(len(gallery))] + [f"pad-{i}" for i in range(args.padding)]
    config = VectorIndexSettings(kind="faiss")
    before = rss()
    t = time.perf_counter()
    # Added in chunks without training (exact_below above n), then trained once on all of them, as a
    # rebuild from the database adds them in one call (which would need another copy of the padding).
    index = FaissIndex(vecs.shape[1], n, VectorIndexSettings(kind="faiss", exact_below=n + 1))
    index.add(ids[: len(gallery)], gallery)
    for lo in range(0, args.padding, 200_000):
        hi = min(args.padding, lo + 200_000)
        index.add(ids[len(gallery) + lo : len(gallery) + hi], padding[lo:hi])
    copy_s = time.perf_counter() - t
    index.settings = config
    index.retrain()
    build_s = time.perf_counter() - t
    peak_build = rss()
    log(f"built in {build_s:.0f} s")
    folder = work / "index" / "c-bench"
    t = time.perf_counter()
    index.save(folder, 1, "bench")
    save_s = time.perf_counter() - t
    loaded = index  # saved: its full vectors are now read from the saved file, mapped
    gc.collect()
    child = load_in_child(folder, n, vecs.shape[1], probes[:200])
    anon_mib = child["rss_after_load"]["RssAnon"] - child["rss_before"]["RssAnon"]
    log(f"saved in {save_s:.0f} s; a new process loaded it in {child['load_s']} s, +{anon_mib:.0f} MiB")
    after_load = rss()

    got_ids = {"lfw-" + str(i): i for i in range(len(gallery))}

    def row_of(face_id: str) -> int:
        return got_ids[face_id] if face_id.startswith("lfw-") else len(gallery) + int(face_id[4:])

    times: dict[int, list[float]] = {1: [], 10: [], 4096: []}
    hit1 = hit10 = 0
    score_err = 0.0
    for j, q in enumerate(probes):
        t = time.perf_counter()
        ids1, _ = loaded.search(q, 1)
        times[1].append(time.perf_counter() - t)
        t = time.perf_counter()
        ids10, cos10 = loaded.search(q, 10)
        times[10].append(time.perf_counter() - t)
        rows = [row_of(i) for i in ids10]
        hit1 += row_of(ids1[0]) == want_i[j, 0]
        hit10 += len(set(rows) & set(want_i[j].tolist()))
        same = [r == w for r, w in zip(rows, want_i[j], strict=True)]
        if all(same):
            score_err = max(score_err, float(np.abs(cos10 - want_s[j]).max()))
        if j < args.runs_4096:
            t = time.perf_counter()
            loaded.search(q, 4096)
            times[4096].append(time.perf_counter() - t)
    searched = rss()
    swept = sweep(loaded, probes, want_i[:, 0], row_of) if args.sweep else None
    result: dict[str, Any] = {
        "benchmark": "vector_index",
        "index": "FaissIndex: PCA-256 (random rotation) + IVF + 4-bit PQ fast scan, exact re-rank from a "
        "memory-mapped vectors.npy",
        "settings": json.loads(config.model_dump_json()),
        "faces": n,
        "lfw_gallery": len(gallery),
        "probes": len(probes),
        "padding": f"{args.padding} samples of a Gaussian fitted to the LFW gallery embeddings "
        "(dlib+faceres, 1152 floats), parts renormalised",
        "padding_check_cosines_to_probes": check,
        "recall_at_1_vs_exact": round(hit1 / len(probes), 4),
        "recall_at_10_vs_exact": round(hit10 / (10 * len(probes)), 4),
        "max_score_difference_when_ids_equal": score_err,
        "search_ms": {f"k{k}": ms(v) for k, v in times.items()},
        "sweep_k1": swept,
        "build_s": round(build_s, 1),
        "build_s_of_which_copying_vectors_in": round(copy_s, 1),
        "save_s": round(save_s, 1),
        "load_in_a_new_process": child,
        "exact_ground_truth_s": round(exact_s, 1),
        "memory_mib": {
            "before": before,
            "after_build": peak_build,
            "index_rss_anon": round(anon_mib, 1),
            "index_rss_anon_per_million_faces": round(anon_mib * 1e6 / n, 1),
            "mapped_file_pages_touched_by_searches": round(searched["RssFile"] - after_load["RssFile"], 1),
            "files_on_disk": {p.name: round(p.stat().st_size / 2**20, 1) for p in folder.iterdir()},
        },
    }
    if args.scale > 1:
        result["scaled"] = scaled(loaded, probes, args.scale)
    return result


def load_in_child(folder: Path, n: int, dim: int, probes: np.ndarray) -> dict[str, Any]:
    """Load the saved index in a new process (memory measured without this one's freed heap), search it."""
    probe_file = folder.parent / "probes.npy"
    np.save(probe_file, probes)
    code = f"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
import numpy as np
from vector_index import rss
from keeneye.store.faiss_index import FaissIndex, _faiss, nlist_for
_faiss()
before = rss()
t = time.perf_counter()
index = FaissIndex.load(Path({str(folder)!r}), 1, {n}, {dim}, "bench")
load_s = time.perf_counter() - t
assert index is not None
after = rss()
times = []
for q in np.load({str(probe_file)!r}):
    t = time.perf_counter(); index.search(q, 10); times.append(time.perf_counter() - t)
print(json.dumps({{"load_s": round(load_s, 1), "rss_before": before, "rss_after_load": after,
                  "rss_after_searches": rss(), "search_k10_first_200_p50_ms":
                  round(float(np.median(times)) * 1000, 3)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def sweep(index: FaissIndex, probes: np.ndarray, want_top: np.ndarray, row_of: Any) -> list[dict[str, Any]]:
    """recall@1 against exact and search time for other nprobe / rerank settings, on the same index."""
    faiss = _faiss()
    ivf = faiss.extract_index_ivf(index._ivf)
    keep = (ivf.nprobe, index.settings)
    out = []
    for nprobe in (64, 128, 256, 384):
        for rerank in (128, 256, 1024):
            ivf.nprobe = nprobe
            index.settings = keep[1].model_copy(update={"rerank": rerank})
            hits, times = 0, []
            for j, q in enumerate(probes):
                t = time.perf_counter()
                ids, _ = index.search(q, 1)
                times.append(time.perf_counter() - t)
                hits += row_of(ids[0]) == want_top[j]
            out.append(
                {"nprobe": nprobe, "rerank": rerank, "recall_at_1": round(hits / len(probes), 4)} | ms(times)
            )
    ivf.nprobe, index.settings = keep
    return out


def scaled(index: FaissIndex, probes: np.ndarray, times: int) -> dict[str, Any]:
    """The search step at ``times`` x the faces, extrapolated from measurements at 1x: the compact
    stage scanning as many codes as it would then (nlist for that size by keeneye's rule, nprobe
    unchanged: nprobe x N / nlist codes), timed at 1x with nprobe raised to scan that many; the coarse
    quantiser's extra cost (nlist centroids of pca_dims floats) timed alone; the re-rank step timed at
    1x (its cost depends on the candidates, not the collection). Recall at 10x is not measured."""
    faiss = _faiss()
    ivf = faiss.extract_index_ivf(index._ivf)
    n, nlist, nprobe = int(ivf.ntotal), int(ivf.nlist), int(ivf.nprobe)
    nlist_big = nlist_for(n * times)
    codes_big = nprobe * n * times / nlist_big
    equiv_nprobe = min(nlist, round(codes_big / (n / nlist)))
    want = max(index.settings.rerank, 10)
    queries = np.ascontiguousarray(probes[:300])

    def timed(nprobe_now: int) -> list[float]:
        ivf.nprobe = nprobe_now
        out = []
        for q in queries:
            t = time.perf_counter()
            index._ivf.search(q[None], want)
            out.append(time.perf_counter() - t)
        return out

    at_1x, at_big = timed(nprobe), timed(equiv_nprobe)
    ivf.nprobe = nprobe
    dims = int(faiss.downcast_index(index._ivf).chain.at(0).d_out)
    rng = np.random.default_rng(0)
    coarse = {}
    for lists in (nlist, nlist_big):
        flat = faiss.IndexFlatL2(dims)
        flat.add(rng.standard_normal((lists, dims), dtype=np.float32))
        xs = rng.standard_normal((300, dims), dtype=np.float32)
        samples = []
        for x in xs:
            t = time.perf_counter()
            flat.search(x[None], nprobe)
            samples.append(time.perf_counter() - t)
        coarse[lists] = float(np.median(samples))
    rerank = []
    for q in queries:
        slots = index._candidates(q, 10)
        t = time.perf_counter()
        _ = index._rows(slots) @ q
        rerank.append(time.perf_counter() - t)
    extra_coarse = coarse[nlist_big] - coarse[nlist]
    first_stage_bytes = len(faiss.serialize_index(index._ivf))
    return {
        "faces": n * times,
        "how": f"extrapolated: at {times}x, nlist {nlist_big} and nprobe {nprobe} scan {codes_big:.0f} codes "
        f"per search; timed at 1x with nprobe {equiv_nprobe} (as many codes), plus the coarse quantiser's "
        "extra cost (timed alone), plus the re-rank step timed at 1x; recall not measured at this size",
        "compact_stage_ms_at_1x": ms(at_1x),
        "compact_stage_ms_scanning_as_many_codes_as_at_scale": ms(at_big),
        "coarse_quantizer_extra_ms": round(extra_coarse * 1000, 3),
        "rerank_step_ms": ms(rerank),
        "search_k10_p50_ms_extrapolated": round(
            (float(np.median(at_big)) + extra_coarse + float(np.median(rerank))) * 1000, 3
        ),
        "first_stage_mib_per_million_faces": round(first_stage_bytes / 2**20 * 1e6 / n, 1),
    }


if __name__ == "__main__":
    main()
