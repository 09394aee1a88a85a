"""How much of this CPU's INT8 GEMM speed the shipped classifier turns into titles, and what batching gains.

- *Peak*: onnxruntime's own u8 x s8 GEMM (one QLinearMatMul node) at the classifier's two FFN shapes, 1,024 rows,
  1 thread: the most multiply-accumulates per second this CPU and library give an INT8 model.
- *Efficiency*: the classifier's multiply-accumulates for the median title (counted from the node shapes onnxruntime's
  profiler records) over the raw session's batch-1 p50, as a share of the peak.
- *Batching*: whole-path throughput (tokenize, pad, run, post-process) of 32 real titles in one call against 32 calls
  of one, paired round by round on the same titles.
"""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import cpu_info
from edge_rec import ContentClassifier
from edge_rec.sessions import DISABLED_OPTIMIZERS
from edge_rec_export.bundle.package_classifier import p50_ms

GEMMS = ("QLinearMatMul", "MatMulInteger", "QGemm", "MatMul", "Gemm", "FusedMatMul", "DynamicQuantizeMatMul")


def qlinear_matmul(k: int, n: int) -> ort.InferenceSession:
    rng = np.random.default_rng(0)
    scalar = lambda name, value, dtype: numpy_helper.from_array(np.array(value, dtype), name)  # noqa: E731
    inits = [scalar("a_scale", 0.02, np.float32), scalar("a_zero", 128, np.uint8),
             numpy_helper.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), "b"),
             numpy_helper.from_array(np.full(n, 0.01, np.float32), "b_scale"),
             numpy_helper.from_array(np.zeros(n, np.int8), "b_zero"),
             scalar("y_scale", 0.5, np.float32), scalar("y_zero", 128, np.uint8)]
    node = helper.make_node("QLinearMatMul", ["a", "a_scale", "a_zero", "b", "b_scale", "b_zero", "y_scale",
                                              "y_zero"], ["y"])
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("a", TensorProto.UINT8, ["m", k])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, ["m", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def seconds(fn, runs: int) -> float:
    """Median of `runs` timed calls after one untimed."""
    return p50_ms(fn, warmup=1, runs=runs) / 1e3


def int8_peak(rows: int = 1024, hidden: int = 384, ff: int = 1536):
    """A callable giving the GEMMs' GMAC/s now: the faster of the two FFN shapes, median of 5 runs each."""
    rng = np.random.default_rng(1)
    gemms = [(qlinear_matmul(k, n), rng.integers(0, 256, (rows, k)).astype(np.uint8), rows * k * n)
             for k, n in ((hidden, ff), (ff, hidden))]
    return lambda: max(macs / seconds(lambda: s.run(None, {"a": a}), 5) / 1e9 for s, a, macs in gemms)


def profiled_macs(path, feeds: dict, tmp_path) -> int:
    """Multiply-accumulates of one run: for every GEMM node, its output's elements x its inner dimension."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp_path / "macs")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=list(DISABLED_OPTIMIZERS))
    session.run(None, feeds)
    events = json.loads(open(session.end_profiling()).read())
    macs = 0
    for e in events:
        args = e.get("args", {})
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and args.get("op_name") in GEMMS:
            first_input = list(args["input_type_shape"][0].values())[0]
            output = list(args["output_type_shape"][0].values())[0]
            macs += int(np.prod(output)) * first_input[-1]
    return macs


@pytest.mark.benchmark(group="classifier efficiency")
def test_share_of_int8_peak(benchmark, median_title, tmp_path):
    clf = ContentClassifier(profile="phone", cache_size=0)
    path = clf.bundle.model_file("classifier")
    text = clf.prefix + median_title
    feeds = clf._feeds(*clf._padded(clf.tokenizer.encode_batch([text])), [median_title])  # what predict() runs
    session = clf.session
    peak = int8_peak()
    macs = profiled_macs(path, feeds, tmp_path)
    shares, peaks = [], []
    for _ in range(15):  # paired: the peak and the model measured in each round, so the machine's drift cancels
        peaks.append(peak())
        shares.append(macs / seconds(lambda: session.run(None, feeds), 20) / 1e9 / peaks[-1])
    benchmark.pedantic(session.run, args=(None, feeds), rounds=300, iterations=1, warmup_rounds=20)
    benchmark.extra_info.update({"tokens": int(feeds["input_ids"].shape[1]), "macs": macs,
                                 "int8_peak_gmacs": round(float(np.median(peaks)), 1),
                                 "share_of_peak": round(float(np.median(shares)), 3), **cpu_info()})
    assert 0 < np.median(shares) < 1.5  # a share far past 1 would mean the MACs were miscounted


@pytest.mark.benchmark(group="classifier efficiency")
def test_batch_32_vs_batch_1(benchmark, titles):
    clf = ContentClassifier(profile="phone", cache_size=0)
    texts = titles[:32]
    one = lambda: [clf.classify([t]) for t in texts]  # noqa: E731
    batch = lambda: clf.classify(texts)  # noqa: E731
    ratios = []
    for _ in range(15):  # paired: both measured in each round, so the machine's drift cancels
        ratios.append(seconds(one, 1) / seconds(batch, 1))
    benchmark.pedantic(batch, rounds=30, iterations=1, warmup_rounds=3)
    together, alone = clf.classify(texts), [clf.classify([t])[0] for t in texts]
    assert [r.primary for r in together] == [r.primary for r in alone]  # in input order, batch mates change nothing
    assert max(abs(a.primary_prob - b.primary_prob) for a, b in zip(together, alone)) < 1e-4
    benchmark.extra_info.update({"batch": 32, "throughput_ratio_vs_batch_1": round(float(np.median(ratios)), 2),
                                 **cpu_info()})
