"""Make a mobile bundle: each model converted to onnxruntime's ORT format, plus the operators they need.

    python -m edge_rec_export.bundle.mobile_bundle assets/zh-news build/zh-news-mobile [--keep-onnx]

The ORT format loads without the ONNX protobuf parser and runs on the minimal/mobile builds of onnxruntime;
`required_operators.config` is the input of a reduced-size build (`build.sh --minimal_build
--include_ops_by_config required_operators.config`). The runtime loads a model's `ort_file` in preference to its
`file`; without --keep-onnx the .onnx files are left out to keep the bundle small.
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import tempfile
from pathlib import Path

from edge_rec.bundle import load_bundle
from edge_rec_export.bundle.bundle_writer import write_manifest
from edge_rec_export.bundle.ort_format import to_ort_format


def make_mobile_bundle(src: Path, out: Path, keep_onnx: bool = False, target_platform: str = "arm") -> Path:
    """Written into a temporary folder beside `out`, then swapped in whole: an interrupted run never leaves a
    half-written bundle where a good one was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's folder is private (0700); the bundle gets an ordinary folder's mode
    try:
        _write_mobile_bundle(load_bundle(src), tmp, keep_onnx, target_platform)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(old / out.name)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _write_mobile_bundle(bundle, out: Path, keep_onnx: bool, target_platform: str) -> Path:
    manifest = copy.deepcopy(bundle.manifest)
    names = [n for n in manifest["files"] if not n.endswith((".onnx", ".ort", ".config"))]
    for name in names:
        shutil.copyfile(bundle.file(name), out / name)
    entries = list(manifest["models"].values())
    orts, ops = to_ort_format([bundle.file(e["file"]) for e in entries], out, target_platform)
    for entry, ort in zip(entries, orts):
        if keep_onnx:
            shutil.copyfile(bundle.file(entry["file"]), out / entry["file"])
            names.append(entry["file"])
        else:
            entry["file"] = ort.name
        entry["ort_file"] = ort.name
        names.append(ort.name)
    names.append(ops.name)
    manifest["mobile"] = {"format": "ort", "target_platform": target_platform, "source_bundle": bundle.name}
    return write_manifest(out, manifest, names)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.bundle.mobile_bundle", description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path, help="bundle directory")
    ap.add_argument("out", type=Path, help="output directory")
    ap.add_argument("--keep-onnx", action="store_true", help="also keep the .onnx files (desktop + mobile)")
    ap.add_argument("--target-platform", choices=["arm", "amd64"], default="arm")
    a = ap.parse_args(argv)
    print(make_mobile_bundle(a.src, a.out, a.keep_onnx, a.target_platform))


if __name__ == "__main__":
    main()
