"""``keeneye models install``: fetch pinned weight packages, convert once, record checksums.

Layout under the data directory::

    cache/packages/<archive>          exactly the registry files, SHA-256 checked
    cache/extracted/<package key>/    unpacked archives
    models/<model file>               converted ONNX (or .npz) files
    models/licenses/<package>.txt     licence text shipped by each package
    models/manifest.json              per model: file, sha256, source package, licence note

Installing is idempotent: an archive whose checksum matches is not fetched again, and a model is
not converted again while its source file, converter code and output checksum are unchanged.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keeneye.core.errors import BackendUnavailable
from keeneye.models.catalog import MODELS, PACKAGES, ModelSpec, Package

Log = Callable[[str], None]

_CONVERTERS: dict[str, tuple[str, str]] = {
    "dlib-resnet": ("keeneye.models.convert.dlib", "convert_resnet"),
    "dlib-shape": ("keeneye.models.convert.dlib", "convert_shape_predictor"),
    "tfjs": ("keeneye.models.convert.tfjs", "convert_graph_model"),
    "keras": ("keeneye.models.convert.keras", "convert_h5"),
    "mtcnn": ("keeneye.models.convert.mtcnn", "convert_mtcnn"),
    "faceapi": ("keeneye.models.convert.faceapi", "convert_faceapi"),
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BackendUnavailable(f"`{' '.join(cmd)}` failed: " + " | ".join(tail))


def _fetch_command(pkg: Package, dest: Path) -> list[str]:
    if pkg.registry == "pypi":
        return [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(dest),
            f"{pkg.name}=={pkg.version}",
        ]
    npm = shutil.which("npm")
    if npm is None:
        raise BackendUnavailable(
            "npm is needed to fetch the @vladmandic/human models: install Node.js and npm"
        )
    return [npm, "pack", "--silent", f"{pkg.name}@{pkg.version}", "--pack-destination", str(dest)]


def fetch_package(pkg: Package, cache_dir: Path, log: Log) -> Path:
    """The package archive in ``cache/packages``, downloaded once and checksum-verified."""
    dest = (cache_dir / "packages").resolve()  # absolute: the fetch command runs in a temporary folder
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / pkg.filename
    if archive.is_file() and sha256_file(archive) == pkg.sha256:
        return archive
    log(f"fetching {pkg.registry} {pkg.name}=={pkg.version}")
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        _run(_fetch_command(pkg, Path(tmp)), cwd=Path(tmp))
        got = Path(tmp) / pkg.filename
        if not got.is_file():
            raise BackendUnavailable(
                f"{pkg.name}: expected {pkg.filename} from the registry, got "
                f"{sorted(p.name for p in Path(tmp).iterdir())}"
            )
        digest = sha256_file(got)
        if digest != pkg.sha256:
            raise BackendUnavailable(
                f"{pkg.filename}: SHA-256 {digest} does not match the pinned {pkg.sha256}"
            )
        got.replace(archive)
    return archive


def extract_package(pkg: Package, archive: Path, cache_dir: Path) -> Path:
    """Unpack once into ``cache/extracted/<key>`` (the archive's single top folder is stripped)."""
    out = cache_dir / "extracted" / pkg.key
    stamp = out / ".keeneye-extracted"
    if stamp.is_file() and stamp.read_text() == pkg.sha256:
        return out
    shutil.rmtree(out, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir))
    try:
        if archive.name.endswith(".whl"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
            root = tmp
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
            tops = list(tmp.iterdir())
            root = tops[0] if len(tops) == 1 and tops[0].is_dir() else tmp
        out.parent.mkdir(parents=True, exist_ok=True)
        root.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stamp.write_text(pkg.sha256)
    return out


def _converter(kind: str) -> tuple[Callable[..., Any], str]:
    module_name, func_name = _CONVERTERS[kind]
    module = importlib.import_module(module_name)
    code = Path(module.__file__ or "").read_bytes()
    return getattr(module, func_name), hashlib.sha256(code).hexdigest()[:16]


@dataclass
class InstallResult:
    model_id: str
    status: str  # "installed" | "up-to-date"
    seconds: float


def load_manifest(models_dir: Path) -> dict[str, Any]:
    path = models_dir / "manifest.json"
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _save_manifest(models_dir: Path, manifest: dict[str, Any]) -> None:
    tmp = models_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(models_dir / "manifest.json")


def _is_current(entry: dict[str, Any] | None, out: Path, source_sha: str, conv_version: str) -> bool:
    return bool(
        entry
        and out.is_file()
        and entry.get("source_sha256") == source_sha
        and entry.get("converter_version") == conv_version
        and entry.get("sha256") == sha256_file(out)
    )


def install_model(
    spec: ModelSpec,
    data_dir: Path | None,
    log: Log,
    force: bool = False,
    *,
    models_dir: Path | None = None,
    cache_dir: Path | None = None,
) -> InstallResult:
    """Fetch, unpack and convert one model; a no-op when it is already current. Files go to
    ``models_dir`` (default ``<data_dir>/models``), packages to ``cache_dir`` (``<data_dir>/cache``)."""
    t0 = time.perf_counter()
    pkg = PACKAGES[spec.package]
    if models_dir is None or cache_dir is None:
        if data_dir is None:
            raise ValueError("give data_dir, or models_dir and cache_dir")
        models_dir = models_dir or data_dir / "models"
        cache_dir = cache_dir or data_dir / "cache"
    models_dir.mkdir(parents=True, exist_ok=True)
    root = extract_package(pkg, fetch_package(pkg, cache_dir, log), cache_dir)
    source = root / spec.source
    convert, conv_version = _converter(spec.converter)
    if spec.options:  # converter options are part of what makes the output
        conv_version += (
            "+" + hashlib.sha256(json.dumps(spec.options, sort_keys=True).encode()).hexdigest()[:8]
        )
    out = models_dir / spec.output
    manifest = load_manifest(models_dir)
    source_sha = sha256_file(source)
    if not force and _is_current(manifest.get(spec.model_id), out, source_sha, conv_version):
        return InstallResult(spec.model_id, "up-to-date", time.perf_counter() - t0)
    log(f"converting {spec.model_id} ({spec.converter}) from {pkg.name} {pkg.version}")
    tmp_out = out.with_name(out.stem + ".tmp" + out.suffix)
    try:
        convert(source, tmp_out, **spec.options)
    except Exception as exc:  # any converter failure is reported as one clear, typed error
        tmp_out.unlink(missing_ok=True)
        raise BackendUnavailable(f"converting {spec.model_id} from {source} failed: {exc}") from exc
    tmp_out.replace(out)
    lic_dir = models_dir / "licenses"
    lic_dir.mkdir(exist_ok=True)
    lic_src = root / pkg.licence_file
    if lic_src.is_file():
        shutil.copyfile(lic_src, lic_dir / f"{pkg.key}.txt")
    manifest = load_manifest(models_dir)
    manifest[spec.model_id] = {
        "file": spec.output,
        "sha256": sha256_file(out),
        "bytes": out.stat().st_size,
        "role": spec.role,
        "package": f"{pkg.registry}:{pkg.name}=={pkg.version}",
        "package_sha256": pkg.sha256,
        "source": spec.source,
        "source_sha256": source_sha,
        "licence": pkg.licence,
        "licence_note": spec.licence_note,
        "licence_file": f"licenses/{pkg.key}.txt",
        "converter": spec.converter,
        "converter_version": conv_version,
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _save_manifest(models_dir, manifest)
    return InstallResult(spec.model_id, "installed", time.perf_counter() - t0)


def select_models(ids: Iterable[str] = (), include_optional: bool = False) -> list[ModelSpec]:
    ids = list(ids)
    unknown = [i for i in ids if i not in MODELS]
    if unknown:
        raise KeyError(f"unknown model id(s) {unknown}; known: {sorted(MODELS)}")
    if ids:
        return [MODELS[i] for i in ids]
    return [m for m in MODELS.values() if m.default or include_optional]


def verify_models(models_dir: Path) -> dict[str, str]:
    """model_id -> "ok" | "missing" | "checksum mismatch", for every model in the manifest."""
    result: dict[str, str] = {}
    for model_id, entry in load_manifest(models_dir).items():
        path = models_dir / entry["file"]
        if not path.is_file():
            result[model_id] = "missing"
        else:
            result[model_id] = "ok" if sha256_file(path) == entry["sha256"] else "checksum mismatch"
    return result
