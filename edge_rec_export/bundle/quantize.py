"""INT8 quantization with onnxruntime.quantization, and a structural check of the result."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic INT8: weights of MatMul/Gemm and the embedding Gather stored as int8, activations quantized per call.

    Gather is included because the word-embedding table is most of the bytes of a pruned BERT.
    """
    src, dst = Path(src), Path(dst)
    prepped = dst.with_suffix(".prep.onnx")
    quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
    try:
        quantize_dynamic(str(prepped), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm", "Gather"],
                         extra_options={"MatMulConstBOnly": True})
    finally:
        prepped.unlink(missing_ok=True)
    return dst


def op_counts(path: Path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)


def float_matmuls(path: Path) -> int:
    """MatMul/Gemm nodes whose second input is a constant weight yet were left in float."""
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    return sum(1 for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights)
