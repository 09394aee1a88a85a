"""Write a bundle: model files + tokenizer.json + manifest.json with checksums (the export/runtime contract)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import onnx

from edge_rec.bundle import FORMAT_VERSION, MANIFEST

DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32",
          onnx.TensorProto.FLOAT16: "float16"}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def io_signature(path: Path) -> dict:
    """Input/output names, dtypes and shapes (symbolic axes as strings) read from the ONNX graph itself."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            shape = [d.dim_param or d.dim_value for d in t.shape.dim]
            out.append({"name": v.name, "dtype": DTYPES.get(t.elem_type, str(t.elem_type)), "shape": shape})
        return out

    init = {i.name for i in graph.initializer}
    return {"inputs": describe([i for i in graph.input if i.name not in init]), "outputs": describe(graph.output)}


def write_bundle(out_dir: Path, *, models: dict[str, Path], tokenizer: Path, manifest: dict,
                 extra_files: dict[str, Path] | None = None) -> Path:
    """Copy `models` (role -> onnx file) and `tokenizer` into `out_dir` and write the manifest.

    `manifest` carries the content-specific parts (name, labels, tags, tokenizer settings, pipeline knobs, metrics);
    this function adds the format version, file checksums and each model's I/O signature.
    """
    from edge_rec import __version__

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, model_entries = {}, {}
    copies = {**{f"{role}.onnx": src for role, src in models.items()}, "tokenizer.json": tokenizer,
              **(extra_files or {})}
    for name, src in copies.items():
        dst = out_dir / name
        if Path(src).resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        files[name] = {"sha256": sha256(dst), "bytes": dst.stat().st_size}
    for role in models:
        model_entries[role] = {"file": f"{role}.onnx", **io_signature(out_dir / f"{role}.onnx")}
    full = {"format_version": FORMAT_VERSION, "created_by": f"edge-rec {__version__}", **manifest,
            "models": model_entries, "files": files}
    (out_dir / MANIFEST).write_text(json.dumps(full, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out_dir
