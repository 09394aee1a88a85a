"""Write a bundle: model files + tokenizer.json + manifest.json with checksums (the export/runtime contract)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx

from edge_rec.bundle import FORMAT_VERSION, MANIFEST, sha256

DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32",
          onnx.TensorProto.FLOAT16: "float16"}


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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    copies = {**{f"{role}.onnx": src for role, src in models.items()}, "tokenizer.json": tokenizer,
              **(extra_files or {})}
    for name, src in copies.items():
        if Path(src).resolve() != (out_dir / name).resolve():
            shutil.copyfile(src, out_dir / name)
    model_entries = {role: {"file": f"{role}.onnx", **io_signature(out_dir / f"{role}.onnx")} for role in models}
    return write_manifest(out_dir, {**manifest, "models": model_entries}, list(copies))


def write_manifest(out_dir: Path, manifest: dict, names: list[str]) -> Path:
    """Stamp format version and creator, list `names` (files already in out_dir) with sha256 and size, and save."""
    from edge_rec import __version__

    files = {name: {"sha256": sha256(out_dir / name), "bytes": (out_dir / name).stat().st_size} for name in names}
    full = {**manifest, "format_version": FORMAT_VERSION, "created_by": f"edge-rec {__version__}", "files": files}
    (out_dir / MANIFEST).write_text(json.dumps(full, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out_dir
