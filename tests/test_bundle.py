"""Bundle integrity: every file checked, every failure names the file."""
import json
import os
import sys
import shutil

import pytest

from edge_rec import BundleError, ContentClassifier, load_bundle
from edge_rec.bundle import FORMAT_VERSION


def test_loads_and_describes(tiny_bundle):
    b = load_bundle(tiny_bundle)
    assert b.name == "tiny" and b.manifest["format_version"] == FORMAT_VERSION
    sig = b.model("classifier")
    assert [i["name"] for i in sig["inputs"]] == ["input_ids", "attention_mask"]
    assert [o["name"] for o in sig["outputs"]] == ["primary_probs", "tag_probs", "index", "vector"]
    assert set(b.manifest["files"]) == {"classifier.onnx", "tokenizer.json"}


@pytest.mark.parametrize("name", ["classifier.onnx", "tokenizer.json"])
def test_bit_flip_is_named(tiny_bundle, name):
    f = tiny_bundle / name
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{name}.*sha256"):
        load_bundle(tiny_bundle)


@pytest.mark.parametrize("name", ["classifier.onnx", "tokenizer.json"])
def test_truncated_file_is_named(tiny_bundle, name):
    f = tiny_bundle / name
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(BundleError, match=f"{name}.*bytes"):
        load_bundle(tiny_bundle)


@pytest.mark.parametrize("name", ["classifier.onnx", "tokenizer.json", "manifest.json"])
def test_missing_file_is_named(tiny_bundle, name):
    (tiny_bundle / name).unlink()
    with pytest.raises(BundleError, match=f"{name}.*missing"):
        load_bundle(tiny_bundle)


def test_newer_format_version(tiny_bundle):
    m = json.loads((tiny_bundle / "manifest.json").read_text())
    m["format_version"] = FORMAT_VERSION + 1
    (tiny_bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="manifest.json.*newer"):
        load_bundle(tiny_bundle)


def test_malformed_manifest(tiny_bundle):
    (tiny_bundle / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="manifest.json.*not valid JSON"):
        load_bundle(tiny_bundle)


def test_manifest_missing_keys(tiny_bundle):
    m = json.loads((tiny_bundle / "manifest.json").read_text())
    del m["tags"]
    (tiny_bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="missing keys.*tags"):
        load_bundle(tiny_bundle)


def test_unknown_manifest_keys_are_ignored(tiny_bundle):
    m = json.loads((tiny_bundle / "manifest.json").read_text())
    m["something_new"] = {"x": 1}
    (tiny_bundle / "manifest.json").write_text(json.dumps(m))
    assert load_bundle(tiny_bundle).name == "tiny"


def test_file_swapped_from_another_bundle(tiny_export, tmp_path):
    from conftest import make_bundle
    a = make_bundle(tmp_path / "a", tiny_export[2])
    b = make_bundle(tmp_path / "b", tiny_export[1])  # the fp32 model: same names, other bytes
    shutil.copyfile(b / "classifier.onnx", a / "classifier.onnx")
    with pytest.raises(BundleError, match="classifier.onnx"):
        load_bundle(a)


def test_label_count_mismatch_with_model(tiny_export, tmp_path):
    from conftest import LABELS, make_bundle
    bad = make_bundle(tmp_path / "bad", tiny_export[2], primary_labels=LABELS + ["extra"])
    with pytest.raises(BundleError, match="declares 'primary_probs' of width 5 but the manifest lists 6 labels"):
        ContentClassifier(bad)


def test_wrong_model_inputs(tmp_path, tiny_bundle):
    """A model whose inputs and outputs are not the ones the runtime reads is rejected at load, naming the file."""
    import onnx
    from onnx import TensorProto, helper

    from conftest import make_bundle
    x = helper.make_tensor_value_info("tokens", TensorProto.INT64, ["b", "t"])
    y = helper.make_tensor_value_info("primary_probs", TensorProto.INT64, ["b", "t"])
    graph = helper.make_graph([helper.make_node("Identity", ["tokens"], ["primary_probs"])], "g", [x], [y])
    path = tmp_path / "wrong.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    bundle = make_bundle(tmp_path / "wrong", path)
    with pytest.raises(BundleError, match="wrong/manifest.json: models.classifier.outputs must declare"):
        ContentClassifier(bundle)


def test_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nope")


def test_mobile_bundle_ort_format(tiny_bundle, tmp_path):
    from conftest import TITLES
    from edge_rec_export.bundle.mobile_bundle import make_mobile_bundle
    mobile = make_mobile_bundle(tiny_bundle, tmp_path / "mobile")
    umask = os.umask(0)
    os.umask(umask)
    assert mobile.stat().st_mode & 0o777 == 0o777 & ~umask  # an ordinary folder, not mkdtemp's private 0700
    b = load_bundle(mobile)
    assert b.model_file("classifier").name == "classifier.ort"
    assert not (mobile / "classifier.onnx").exists()
    ops = (mobile / "required_operators.config").read_text()
    assert "QuantizeLinear" in ops and "LayerNormalization" in ops
    a = ContentClassifier(tiny_bundle).classify(TITLES)
    m = ContentClassifier(mobile).classify(TITLES)
    assert [r.primary_prob for r in a] == [r.primary_prob for r in m]
    # Re-exported over itself: swapped in whole, no temporary folder left behind, the same bytes and answers.
    before = {p.name: p.read_bytes() for p in mobile.iterdir()}
    make_mobile_bundle(tiny_bundle, tmp_path / "mobile")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    if sys.platform.startswith("linux"):  # where address randomisation can be turned off for the converter
        assert {p.name: p.read_bytes() for p in mobile.iterdir()} == before
    again = ContentClassifier(mobile).classify(TITLES)
    assert [r.primary_prob for r in again] == [r.primary_prob for r in m]


def test_ort_file_preferred_when_both_present(tiny_bundle, tmp_path):
    from edge_rec_export.bundle.mobile_bundle import make_mobile_bundle
    both = make_mobile_bundle(tiny_bundle, tmp_path / "both", keep_onnx=True)
    b = load_bundle(both)
    assert b.model("classifier")["file"] == "classifier.onnx"
    assert b.model_file("classifier").name == "classifier.ort"
    f = both / "classifier.ort"
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="classifier.ort.*sha256"):
        load_bundle(both)


def test_a_file_swapped_after_loading_is_refused(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    f = tiny_bundle / "classifier.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))  # after the check, before the session reads it
    with pytest.raises(BundleError, match="classifier.onnx: changed since the manifest was written"):
        ContentClassifier(bundle)


def test_external_weights_never_load(tiny_export, tmp_path):
    """Weights moved into an external-data file are outside the signed bytes: the model must not load."""
    import onnx

    from conftest import make_bundle
    model = onnx.load(str(tiny_export[1]))
    moved = tmp_path / "external.onnx"
    onnx.save_model(model, str(moved), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    out = make_bundle(tmp_path / "b", moved)
    shutil.copyfile(tmp_path / "weights.bin", out / "weights.bin")  # beside the model, but not in the manifest
    with pytest.raises(BundleError, match="classifier.onnx: onnxruntime cannot load"):
        ContentClassifier(out)


def test_links_out_of_the_bundle_and_oversized_manifests_are_refused(tiny_bundle, tmp_path):
    outside = tmp_path / "elsewhere.json"
    shutil.move(tiny_bundle / "tokenizer.json", outside)
    (tiny_bundle / "tokenizer.json").symlink_to(outside)
    with pytest.raises(BundleError, match="outside the bundle"):
        load_bundle(tiny_bundle)
    link = tmp_path / "linked-bundle"
    (tiny_bundle / "tokenizer.json").unlink()
    shutil.move(outside, tiny_bundle / "tokenizer.json")
    link.symlink_to(tiny_bundle, target_is_directory=True)
    assert load_bundle(link).name == "tiny"  # a linked bundle directory is fine
    from edge_rec.bundle import MAX_MANIFEST_BYTES
    manifest = tiny_bundle / "manifest.json"
    manifest.write_text(manifest.read_text() + " " * MAX_MANIFEST_BYTES, encoding="utf-8")
    with pytest.raises(BundleError, match="past the limit"):
        load_bundle(tiny_bundle)
