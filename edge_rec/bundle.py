"""Load and verify a bundle: the directory that `edge_rec_export/` writes and the runtime reads.

A bundle is `manifest.json` plus the files it lists (ONNX models, tokenizer.json). Loading checks the format
version, that every listed file is present and matches its sha256, and that the manifest has what the runtime
needs; each failure names the file and what was expected.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from edge_rec.checks import is_count, is_probability
from edge_rec.resources import shipped
from edge_rec.scope import SCRIPTS

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Documented bounds on untrusted bundles (README): past them loading stops with a BundleError.
MAX_MANIFEST_BYTES = 16 << 20
MAX_FILE_BYTES = 512 << 20
MAX_LENGTH = 8192  # tokens per text (a model's position table is checked at load too)
MAX_PREFIX = 256  # characters of tokenizer.prefix ("query: ")
MAX_CHARS = 1 << 20  # characters of a text read before tokenizing
DEFAULT_BUNDLE = "zh-news"
_REQUIRED = ("format_version", "name", "primary_labels", "tags", "tokenizer", "models", "files")


class BundleError(ValueError):
    """The bundle is missing, corrupted, from a newer format, or does not match what the runtime expects."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict
    signed_by: str | None = None  # the id of the trusted key whose signature was checked at load (edge_rec/trust.py)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def primary_labels(self) -> list[str]:
        return self.manifest["primary_labels"]

    @property
    def tags(self) -> list[str]:
        return self.manifest["tags"]

    @property
    def tokenizer(self) -> dict:
        return self.manifest["tokenizer"]

    @property
    def pipeline(self) -> dict:
        return self.manifest.get("pipeline", {})

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics", {})

    @property
    def vector_dim(self) -> int:
        """The classifier's vector size (declared in the manifest, checked against the graph at load)."""
        return next(o["shape"][-1] for o in self.manifest["models"]["classifier"]["outputs"] if o["name"] == "vector")

    @property
    def classification_key(self) -> str:
        """What a classification made with this bundle depends on (its labels, tags and vector size; its name for
        messages): results written under another key are classified again, not mixed in."""
        dim = self.vector_dim
        digest = hashlib.sha256(json.dumps([self.primary_labels, self.tags, dim]).encode()).hexdigest()
        return json.dumps({"name": self.name, "labels": digest})

    def file(self, name: str) -> Path:
        if name not in self.manifest["files"]:
            raise BundleError(f"{self.path}: {MANIFEST} lists no file {name!r}; it has {sorted(self.manifest['files'])}")
        return self.path / name

    def read(self, name: str) -> bytes:
        """The bytes of a listed file, checked against the manifest's size and sha256 as they are read: what is
        handed to onnxruntime or tokenizers is exactly what was verified (a file swapped after load_bundle() is
        refused, not loaded)."""
        path = self.file(name)
        meta = self.manifest["files"][name]
        try:
            data = path.read_bytes()
        except OSError as e:
            raise BundleError(f"{path}: cannot be read ({e.strerror or e})") from None
        if ("bytes" in meta and len(data) != meta["bytes"]) or hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise BundleError(f"{path}: changed since the manifest was written (size or sha256 differs)")
        return data

    def model_file(self, role: str) -> Path:
        """The model file to load for `role`: the ORT-format copy when the bundle ships one, else the .onnx file."""
        entry = self.model(role)
        return self.file(entry.get("ort_file") or entry["file"])

    def model(self, role: str) -> dict:
        models = self.manifest["models"]
        if role not in models:
            raise BundleError(f"{self.path}: bundle has no {role!r} model; it has {sorted(models)}")
        return models[role]


def default_bundle_path() -> Path:
    """$EDGE_REC_BUNDLE if set, else the shipped default bundle (package data in a wheel, assets/ in a checkout)."""
    env = os.environ.get("EDGE_REC_BUNDLE")
    return Path(env) if env else shipped("assets") / DEFAULT_BUNDLE


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_bundle(path: str | os.PathLike | None = None, verify: bool = True, trusted_keys=None) -> Bundle:
    """Read and check a bundle directory. `verify=False` skips the sha256 pass (size is still checked).
    `trusted_keys`: public keys (PEM files or bytes; several for key rotation): the bundle must carry a signature
    by one of them over its manifest (edge_rec/trust.py), checked before anything else is read."""
    path = Path(path) if path is not None else default_bundle_path()
    if path.is_file():  # often its manifest.json: the folder holding it was meant
        raise BundleError(f"{path} is a file; give the bundle's directory ({path.parent})")
    if not path.is_dir():
        raise BundleError(f"bundle directory not found: {path} (pass a bundle path or set EDGE_REC_BUNDLE)")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{mpath}: missing; every bundle needs a {MANIFEST}")
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{mpath}: {mpath.stat().st_size} bytes, past the limit of {MAX_MANIFEST_BYTES}")
    try:
        raw = mpath.read_bytes()  # read once: the bytes signed are the bytes parsed
    except OSError as e:
        raise BundleError(f"{mpath}: cannot be read ({e.strerror or e})") from None
    signed_by = None
    if trusted_keys is not None:
        from edge_rec.trust import check_signature
        signed_by = check_signature(path, raw, trusted_keys)
    try:
        manifest = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except RecursionError:
        raise BundleError(f"{mpath}: not valid JSON (nested too deeply)") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an integer past Python's digit limit
        raise BundleError(f"{mpath}: not valid JSON ({str(e)[:200]})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{mpath}: expected a JSON object, got {type(manifest).__name__}")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"{mpath}: missing keys {missing}")
    version = manifest["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{mpath}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise BundleError(f"{mpath}: format_version {version} is newer than this edge-rec reads ({FORMAT_VERSION}); "
                          "upgrade edge-rec or re-export the bundle")
    if version < 1:
        raise BundleError(f"{mpath}: format_version {version} is not a valid version (expected 1..{FORMAT_VERSION})")
    try:
        _check_files(path, manifest, verify)
    except OSError as e:
        raise BundleError(f"{e.filename or path}: cannot be read ({e.strerror or e})") from None
    _check_content(mpath, manifest)
    return Bundle(path, manifest, signed_by)


def as_bundle(bundle: "str | os.PathLike | Bundle | None", trusted_keys=None) -> Bundle:
    """A Bundle from a path (loaded, with `trusted_keys` checked) or a loaded Bundle (whose signature, where keys
    are given, must have been checked against one of them when it was loaded)."""
    if not isinstance(bundle, Bundle):
        return load_bundle(bundle, trusted_keys=trusted_keys)
    if trusted_keys is not None:
        from edge_rec.trust import public_keys
        if bundle.signed_by not in public_keys(trusted_keys):
            raise BundleError(f"{bundle.path}: loaded without a check of its signature by these trusted keys; load "
                              "it with load_bundle(path, trusted_keys=...)")
    return bundle


def _unique_keys(pairs: list) -> dict:
    """A JSON object whose keys are unique: with a key twice, which value counts would depend on the reader."""
    out = dict(pairs)
    if len(out) < len(pairs):
        seen = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"key {twice!r} appears twice in one object")
    return out


def _check_files(path: Path, manifest: dict, verify: bool) -> None:
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{path / MANIFEST}: 'files' must map file names to their sha256 and size")
    if not isinstance(manifest["models"], dict) or not manifest["models"]:
        raise BundleError(f"{path / MANIFEST}: 'models' must map model roles to their file and signature")
    root = path.resolve()
    for name, meta in files.items():
        f = path / name
        if not isinstance(name, str) or Path(name).name != name or name in (".", ".."):
            raise BundleError(f"{path / MANIFEST}: file name {name!r} must be a plain name inside the bundle")
        if not f.is_file():
            raise BundleError(f"{f}: missing (listed in {MANIFEST})")
        if f.resolve().parent != root:
            raise BundleError(f"{f}: a link to a file outside the bundle ({f.resolve()}); bundles are self-contained")
        if f.stat().st_size > MAX_FILE_BYTES:
            raise BundleError(f"{f}: {f.stat().st_size} bytes, past the limit of {MAX_FILE_BYTES}")
        if not isinstance(meta, dict) or "sha256" not in meta:
            raise BundleError(f"{path / MANIFEST}: entry for {name!r} has no sha256")
        size = f.stat().st_size
        if "bytes" in meta and size != meta["bytes"]:
            raise BundleError(f"{f}: {size} bytes, the manifest says {meta['bytes']} (truncated or replaced?)")
        if verify and sha256(f) != meta["sha256"]:
            raise BundleError(f"{f}: sha256 does not match the manifest (corrupted or from another bundle)")
    for role, model in manifest["models"].items():
        if not isinstance(model, dict) or model.get("file") not in files:
            raise BundleError(f"{path / MANIFEST}: model {role!r} names a file not listed in 'files'")
        if "ort_file" in model and model["ort_file"] not in files:
            raise BundleError(f"{path / MANIFEST}: model {role!r} names an ORT file not listed in 'files'")
    tok = manifest["tokenizer"]
    if not isinstance(tok, dict) or tok.get("file") not in files:
        raise BundleError(f"{path / MANIFEST}: 'tokenizer.file' must name a file listed in 'files'")


def _check_content(mpath: Path, manifest: dict) -> None:
    for key in ("primary_labels", "tags"):
        value = manifest[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BundleError(f"{mpath}: {key!r} must be a list of strings")
    if len(manifest["primary_labels"]) < 2:
        raise BundleError(f"{mpath}: 'primary_labels' needs at least 2 labels, got {len(manifest['primary_labels'])}")
    if not isinstance(manifest["name"], str) or not 0 < len(manifest["name"]) <= 200:
        raise BundleError(f"{mpath}: 'name' must be a string of 1-200 characters")
    tok = manifest["tokenizer"]
    max_length = tok.get("max_length")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or not 2 <= max_length <= MAX_LENGTH:
        raise BundleError(f"{mpath}: tokenizer.max_length must be an integer in [2, {MAX_LENGTH}], got "
                          f"{str(max_length)[:40]}")
    checks = {("tokenizer", "pad_id"): (tok.get("pad_id"), lambda v: is_count(v) and v < 10_000_000),
              ("tokenizer", "prefix"): (tok.get("prefix", ""), lambda v: isinstance(v, str) and len(v) <= MAX_PREFIX),
              ("tokenizer", "max_chars"): (tok.get("max_chars", 1), lambda v: is_count(v) and 0 < v <= MAX_CHARS)}
    for role, model in manifest["models"].items():
        _check_io_declared(mpath, role, model)
    outputs = {o["name"]: o["shape"] for o in manifest["models"].get("classifier", {}).get("outputs", [])}
    widths = {"primary_probs": len(manifest["primary_labels"]), "tag_probs": len(manifest["tags"]), "vector": None}
    for name, width in widths.items():
        shape = outputs.get(name)
        if not shape or not isinstance(shape[-1], int):
            raise BundleError(f"{mpath}: models.classifier.outputs must declare {name!r} with a fixed last dimension")
        if width is not None and shape[-1] != width:
            raise BundleError(f"{mpath}: models.classifier.outputs declares {name!r} of width {shape[-1]} but the "
                              f"manifest lists {width} {'labels' if name == 'primary_probs' else 'tags'}")
    for section in ("pipeline", "metrics"):
        if not isinstance(manifest.get(section, {}), dict):
            raise BundleError(f"{mpath}: {section!r} must be an object, got {type(manifest[section]).__name__}")
    scope = manifest.get("scope")
    if scope is not None:
        if not isinstance(scope, dict) or not isinstance(scope.get("scripts"), list) or not scope["scripts"] or \
                not all(s in SCRIPTS for s in scope["scripts"]):
            raise BundleError(f"{mpath}: 'scope.scripts' must be a non-empty list of script names from "
                              f"{sorted(SCRIPTS)}")
        for key in ("min_script_share", "min_primary_prob"):
            if not is_probability(scope.get(key)):
                raise BundleError(f"{mpath}: scope.{key} must be a number in [0, 1], got {scope.get(key)!r}")
    calibration = manifest.get("index_calibration")
    if calibration is not None:
        quantiles = calibration.get("quantiles") if isinstance(calibration, dict) else None
        if not isinstance(quantiles, dict) or not set(quantiles) <= set(manifest["primary_labels"]) or not all(
                _is_quantile_list(q) for q in quantiles.values()):
            raise BundleError(f"{mpath}: 'index_calibration.quantiles' must map primary labels to non-decreasing "
                              "lists of at least 2 numbers in [0, 1]")
    for key, check in _PIPELINE_CHECKS.items():
        if key in manifest.get("pipeline", {}):
            checks[("pipeline", key)] = (manifest["pipeline"][key], check)
    for (section, key), (value, ok) in checks.items():
        if not ok(value):
            raise BundleError(f"{mpath}: {section}.{key} has an invalid value {value!r}")


def _check_io_declared(mpath: Path, role: str, model: dict) -> None:
    """models.<role>.inputs / outputs: lists of {name, dtype, shape} (shape: ints and dimension names), checked
    against the graph when its session is made (sessions.check_declared)."""
    for side in ("inputs", "outputs"):
        declared = model.get(side)
        if not isinstance(declared, list) or not declared or not all(
                isinstance(d, dict) and isinstance(d.get("name"), str) and isinstance(d.get("dtype"), str)
                and isinstance(d.get("shape"), list) and len(d["shape"]) <= 8
                and all((isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 1 << 31) or isinstance(x, str)
                        for x in d["shape"]) for d in declared):
            raise BundleError(f"{mpath}: models.{role}.{side} must be a list of {{name, dtype, shape}} entries "
                              "(shape: at most 8 sizes or dimension names)")


def _is_quantile_list(q) -> bool:
    return (isinstance(q, list) and len(q) >= 2 and all(is_probability(x) for x in q)
            and all(a <= b for a, b in zip(q, q[1:])))


# Pipeline knobs the runtime reads, checked at load so a bad manifest fails there and not at the first call.
_PIPELINE_CHECKS = {"tag_threshold": is_probability, "batch_size": lambda v: is_count(v) and v > 0}
