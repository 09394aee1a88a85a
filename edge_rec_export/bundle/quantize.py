"""INT8 quantization with onnxruntime.quantization, and a structural check of the result."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

QUANTIZED_OPS = ["MatMul", "Gemm", "Gather"]  # Gather: the embedding tables are most of the bytes


class _Feeds(CalibrationDataReader):
    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def quantize_int8(src: Path, dst: Path, calibration: Sequence[Mapping[str, np.ndarray]]) -> Path:
    """Static INT8 (QDQ): weights int8 per channel, activations uint8 with scales fixed from `calibration` (model
    inputs as numpy arrays; min-max over them).

    Static, not dynamic: dynamic quantization computes one activation scale per call over the whole batch, so a
    row's answer moved with its batch mates (7 of 1,000 titles changed their label between batch 1 and 64); with
    fixed scales every row is computed alone, at the same accuracy and speed (measured in the README).
    """
    src, dst = Path(src), Path(dst)
    prepped = dst.with_suffix(".prep.onnx")
    quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
    try:
        quantize_static(str(prepped), str(dst), _Feeds(calibration), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=QUANTIZED_OPS, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    finally:
        prepped.unlink(missing_ok=True)
    return dst


def op_counts(path: Path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)


def int8_weights(path: Path) -> int:
    """Weights stored as int8 and dequantized in the graph (QDQ), i.e. how many weight tensors were quantized."""
    graph = onnx.load(str(path), load_external_data=False).graph
    int8 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    return sum(1 for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8)


def float_matmuls(path: Path) -> int:
    """MatMul/Gemm nodes whose second input is a constant weight yet were left in float."""
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    return sum(1 for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights)
