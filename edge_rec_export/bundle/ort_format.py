"""ONNX -> ORT format for mobile onnxruntime builds, plus the operator list for a reduced-size build."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort


def to_ort_format(onnx_paths: list[Path], out_dir: Path, target_platform: str = "arm") -> tuple[list[Path], Path]:
    """Write `<stem>.ort` for every model and one `required_operators.config` covering all of them into out_dir.

    'Fixed' style bakes the graph optimizations in (the advice for CPU-only use); target_platform "arm" keeps out
    x86-only kernels so the same file runs on phones and, as tested here, on x86.
    """
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        for path in onnx_paths:
            shutil.copyfile(path, src / Path(path).name)
        # One conversion over the folder: its config lists the operators of every model together.
        convert_onnx_models_to_ort(src, dst, [OptimizationStyle.Fixed], target_platform=target_platform,
                                   enable_type_reduction=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        orts = [out_dir / f"{Path(path).stem}.ort" for path in onnx_paths]
        for ort in orts:
            shutil.copyfile(dst / ort.name, ort)
        ops = out_dir / "required_operators.config"
        # The converter lists the models by their temporary paths: name them by file, so the same input gives
        # the same config.
        ops.write_text(next(dst.glob("*.config")).read_text(encoding="utf-8").replace(f"{dst}/", ""), encoding="utf-8")
    return orts, ops
