"""ONNX -> ORT format for mobile onnxruntime builds, plus the operator list for a reduced-size build."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort


def to_ort_format(onnx_path: Path, out_dir: Path, target_platform: str = "arm") -> tuple[Path, Path]:
    """Write `<stem>.ort` and `required_operators.config` into out_dir.

    'Fixed' style bakes the graph optimizations in (the advice for CPU-only use); target_platform "arm" keeps out
    x86-only kernels so the same file runs on phones and, as tested here, on x86.
    """
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        shutil.copyfile(onnx_path, src / onnx_path.name)
        convert_onnx_models_to_ort(src, Path(tmp) / "out", [OptimizationStyle.Fixed], target_platform=target_platform,
                                   enable_type_reduction=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        ort = out_dir / f"{onnx_path.stem}.ort"
        ops = out_dir / "required_operators.config"
        shutil.copyfile(Path(tmp) / "out" / f"{onnx_path.stem}.ort", ort)
        shutil.copyfile(next((Path(tmp) / "out").glob("*.config")), ops)
    return ort, ops
