"""The runtime's int8 similarity graph, `edge_rec/graphs/int8_max_dot.onnx`: item codes (N, V) uint8 (zero point
128) x reference codes (V, h) int8 -> (N,) int32, the largest integer dot product of each item over the references
(MatMulInteger + ReduceMax). It has no weights; it is built here because onnx is an export-side dependency, and
committed as package data (tests/test_semantic.py checks that the committed file is this graph).

    python -m edge_rec_export.bundle.int8_product
"""
from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

GRAPH = Path(__file__).resolve().parents[2] / "edge_rec" / "graphs" / "int8_max_dot.onnx"


def int8_max_dot() -> bytes:
    nodes = [helper.make_node("MatMulInteger", ["codes", "refs", "zero"], ["dots"]),
             helper.make_node("ReduceMax", ["dots"], ["best"], axes=[1], keepdims=0)]
    graph = helper.make_graph(
        nodes, "int8_max_dot",
        [helper.make_tensor_value_info("codes", TensorProto.UINT8, ["N", "V"]),
         helper.make_tensor_value_info("refs", TensorProto.INT8, ["V", "h"]),
         helper.make_tensor_value_info("zero", TensorProto.UINT8, [])],
        [helper.make_tensor_value_info("best", TensorProto.INT32, ["N"])])
    # Opset 13 / IR 8: loadable by every onnxruntime the runtime accepts (>= 1.20).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edge-rec")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def main() -> None:
    GRAPH.write_bytes(int8_max_dot())
    print(f"wrote {GRAPH}")


if __name__ == "__main__":
    main()
