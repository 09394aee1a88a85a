"""The runtime's product graphs, committed as package data under `edge_rec/graphs/` (they have no weights; they are
built here because onnx is an export-side dependency; tests/test_semantic.py checks the committed files are these):

- `int8_max_dot.onnx`: item codes (N, V) uint8 (zero point 128) x reference codes (V, h) int8 -> (N,) int32, the
  largest integer dot product of each item over the references (MatMulInteger + ReduceMax);
- `float_max_dot.onnx`: vectors (N, V) float32 x references (V, h) float32 -> (N,) float32, the largest dot product
  (MatMul + ReduceMax; h = 1 is one product per row). The runtime's float products run here, in onnxruntime's
  thread pool of the profile's size, not in numpy's BLAS, which takes every core of the host.

    python -m edge_rec_export.bundle.product_graphs
"""
from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

GRAPHS = Path(__file__).resolve().parents[2] / "edge_rec" / "graphs"


def int8_max_dot() -> bytes:
    return _max_dot("int8_max_dot", helper.make_node("MatMulInteger", ["codes", "refs", "zero"], ["dots"]),
                    [helper.make_tensor_value_info("codes", TensorProto.UINT8, ["N", "V"]),
                     helper.make_tensor_value_info("refs", TensorProto.INT8, ["V", "h"]),
                     helper.make_tensor_value_info("zero", TensorProto.UINT8, [])], TensorProto.INT32)


def float_max_dot() -> bytes:
    return _max_dot("float_max_dot", helper.make_node("MatMul", ["vectors", "refs"], ["dots"]),
                    [helper.make_tensor_value_info("vectors", TensorProto.FLOAT, ["N", "V"]),
                     helper.make_tensor_value_info("refs", TensorProto.FLOAT, ["V", "h"])], TensorProto.FLOAT)


def _max_dot(name: str, product, inputs: list, out_type: int) -> bytes:
    graph = helper.make_graph([product, helper.make_node("ReduceMax", ["dots"], ["best"], axes=[1], keepdims=0)],
                              name, inputs, [helper.make_tensor_value_info("best", out_type, ["N"])])
    # Opset 13 / IR 8: loadable by every onnxruntime the runtime accepts (>= 1.20).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edge-rec")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


GRAPH_BYTES = {"int8_max_dot.onnx": int8_max_dot, "float_max_dot.onnx": float_max_dot}


def main() -> None:
    for name, make in GRAPH_BYTES.items():
        (GRAPHS / name).write_bytes(make())
        print(f"wrote {GRAPHS / name}")


if __name__ == "__main__":
    main()
