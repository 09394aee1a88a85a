"""The shipped bundle: integrity, recorded figures, and accuracy through the runtime's own tokenizer path."""
import numpy as np
import pytest

from conftest import SHARED_DATA
from edge_rec import ContentClassifier, default_bundle_path, load_bundle


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(default_bundle_path())


def test_manifest_records_every_step(bundle):
    m = bundle.metrics
    for step in ("teacher_fp32_torch", "student_fp32_torch", "student_fp32_onnx", "student_int8_onnx"):
        assert {"accuracy", "macro_f1", "tag_micro_f1", "index_mae", "index_spearman"} <= set(m[step])
    assert m["int8_retention_of_teacher_accuracy"] >= 0.97
    assert m["parity_fp32_onnx_vs_torch_max_abs"] <= 1e-4
    assert sum(f["bytes"] for f in bundle.manifest["files"].values()) < 25_000_000
    assert len(bundle.primary_labels) == 15 and len(bundle.tags) == 300


def test_int8_graph_is_quantized(bundle):
    from export.quantize import float_matmuls, op_counts
    path = bundle.model_file("classifier")
    ops = op_counts(path)
    assert ops["MatMulInteger"] >= 2 * 6  # 2 layers x (q, k, v, out, ff in, ff out)
    assert float_matmuls(path) == 0


@pytest.mark.skipif(not (SHARED_DATA / "toutiao_partial").is_dir(), reason="../shared/data not present")
def test_held_out_accuracy_through_the_runtime(bundle):
    """Raw test titles through tokenizer + session + post-processing agree with the accuracy measured at export."""
    from export.news_data import read_corpora, split
    test = split(read_corpora(SHARED_DATA), seed=13)[2][:600]
    results = ContentClassifier(bundle, profile="pc").classify([e.title for e in test])
    acc = np.mean([bundle.primary_labels.index(r.primary) == e.label for r, e in zip(results, test)])
    recorded = bundle.metrics["student_int8_onnx"]["accuracy"]
    assert acc >= recorded - 0.04, f"runtime accuracy {acc:.3f} on 600 test titles vs {recorded} at export"
