"""Export a torch model to ONNX and prove the graph computes what torch computes.

Parity is checked on real inputs with onnxruntime; a gap past the tolerance raises `ParityError` (the optimum
exporters' `validate_model_outputs` pattern). `dynamo=True` is used because the legacy TorchScript exporter
produced a wrong BERT graph with this torch (DESIGN.md).
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch


# The exporter logs a warning per torchvision operator it cannot register when torchvision is not installed (it
# is not a dependency, and no model here uses those operators): noise in every build's output.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


class ParityError(RuntimeError):
    """onnxruntime's outputs differ from torch's by more than the stated tolerance."""


def export_onnx(module: torch.nn.Module, example: dict[str, torch.Tensor], output_names, path: Path,
                dynamic: dict[str, dict[int, str]]) -> Path:
    """Export `module(**example)` to `path` as one self-contained ONNX file with the named dynamic axes."""
    path = Path(path)
    module = module.eval()
    shapes = {name: {axis: torch.export.Dim(label, min=1, max=4096) for axis, label in dynamic.get(name, {}).items()}
              for name in example}  # inputs without dynamic axes are static
    # Equal labels must be the same Dim object for torch.export to tie the axes together.
    dims: dict[str, torch.export.Dim] = {}
    for axes in shapes.values():
        for axis, dim in axes.items():
            axes[axis] = dims.setdefault(dim.__name__, dim)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (), kwargs=example, dynamo=True, dynamic_shapes=shapes,
                                    input_names=list(example), output_names=list(output_names), verbose=False)
    program.optimize()
    program.save(str(path), external_data=False)
    return strip_metadata(path)


def strip_metadata(path: Path) -> Path:
    """Drop the exporter's per-node debugging metadata (stack traces, fx node names, scopes) from an ONNX file.

    It does not change what the graph computes, and in an unrolled graph it is most of the file (0.82 -> 0.21 MB
    for the default ranker)."""
    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    onnx.save(model, str(path))
    return path


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})


def check_parity(module: torch.nn.Module, path: Path, inputs: dict[str, torch.Tensor], output_names,
                 atol: float) -> float:
    """Max abs difference between torch and onnxruntime over all outputs; raises ParityError past `atol`."""
    with torch.no_grad():
        expected = module.eval()(**inputs)
    expected = (expected,) if isinstance(expected, torch.Tensor) else expected
    got = run_onnx(path, {k: v.numpy() for k, v in inputs.items()})
    worst = 0.0
    for name, e, g in zip(output_names, expected, got):
        e = e.numpy()
        if e.shape != g.shape:
            raise ParityError(f"{path.name}: output {name!r} has shape {g.shape} in ONNX but {e.shape} in torch")
        diff = float(np.max(np.abs(e - g))) if e.size else 0.0
        if not diff <= atol:  # also catches NaN
            raise ParityError(f"{path.name}: output {name!r} differs from torch by {diff:.3g} > tolerance {atol:g}")
        worst = max(worst, diff)
    return worst
