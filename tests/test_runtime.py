"""ContentClassifier on a tiny real bundle: outputs, batching, cache, bad input, torch-free runtime."""
import subprocess
import sys

import numpy as np
import pytest

from conftest import LABELS, TAGS, TITLES
from edge_rec import BundleError, ContentClassifier, load_bundle


@pytest.fixture()
def clf(tiny_bundle):
    return ContentClassifier(tiny_bundle, profile="phone")


def test_classify_outputs(clf):
    results = clf.classify(TITLES)
    assert len(results) == len(TITLES)
    for r in results:
        assert r.primary in LABELS and 0.0 < r.primary_prob <= 1.0
        assert 0.0 <= r.index <= 1.0
        assert all(t in TAGS and p >= clf.tag_threshold for t, p in r.tags)
        assert [p for _, p in r.tags] == sorted((p for _, p in r.tags), reverse=True)
        assert r.vector.shape == (16,) and abs(np.linalg.norm(r.vector) - 1.0) < 1e-4


@pytest.fixture()
def fp32_bundle(tiny_export, tmp_path):
    from conftest import make_bundle
    return make_bundle(tmp_path / "fp32", tiny_export[1])


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_results_do_not_depend_on_batch_mates(precision, fp32_bundle, tiny_bundle):
    """Padding to the batch's longest text and the other rows change nothing: fp32 by construction, INT8 because
    its activation scales are fixed at export (static quantization), not computed per batch."""
    bundle = {"fp32": fp32_bundle, "int8": tiny_bundle}[precision]
    batch = ContentClassifier(bundle).classify(TITLES)
    for i, text in enumerate(TITLES):
        single = ContentClassifier(bundle).classify(text)[0]
        assert single.primary == batch[i].primary and [t for t, _ in single.tags] == [t for t, _ in batch[i].tags]
        assert single.primary_prob == pytest.approx(batch[i].primary_prob, abs=1e-5)
        np.testing.assert_allclose(single.vector, batch[i].vector, atol=1e-5)


def test_batch_size_does_not_change_results(tiny_bundle):
    a = ContentClassifier(tiny_bundle, batch_size=1).classify(TITLES)
    b = ContentClassifier(tiny_bundle, batch_size=3).classify(TITLES)
    assert [r.primary for r in a] == [r.primary for r in b]
    np.testing.assert_allclose([r.index for r in a], [r.index for r in b], atol=1e-3)


def test_cache_by_id(clf):
    first = clf.classify(TITLES[:3], ids=["a", "b", "c"])
    assert len(clf.cache) == 3
    again = clf.classify(TITLES[:3], ids=["a", "b", "c"])
    assert all(x is y for x, y in zip(first, again))


def test_a_new_text_under_a_known_id_is_classified_afresh(tiny_bundle):
    clf = ContentClassifier(tiny_bundle)
    old = clf.classify(TITLES[0], ids=["a"])[0]
    new = clf.classify(TITLES[5], ids=["a"])[0]
    fresh = ContentClassifier(tiny_bundle).classify(TITLES[5])[0]
    assert new is not old and new.primary_prob == pytest.approx(fresh.primary_prob, abs=1e-6)
    assert clf.classify(TITLES[5], ids=["a"])[0] is new and len(clf.cache) == 1  # the entry was replaced
    clf.clear_cache()
    assert len(clf.cache) == 0 and clf.classify(TITLES[5], ids=["a"])[0] is not new


def test_results_do_not_alias_the_batch_or_the_cache(tiny_bundle):
    clf = ContentClassifier(tiny_bundle)
    r = clf.classify(TITLES, ids=list(range(len(TITLES))))
    assert r[0].vector.base is None or r[0].vector.base is not r[1].vector.base  # own memory, not a batch view
    with pytest.raises(ValueError, match="read-only"):
        r[0].vector[:] = 0
    assert np.linalg.norm(clf.classify(TITLES[0], ids=[0])[0].vector) == pytest.approx(1.0, abs=1e-4)


def test_cache_is_bounded(tiny_bundle):
    clf = ContentClassifier(tiny_bundle, cache_size=4)
    clf.classify(TITLES)
    assert len(clf.cache) == 4


def test_tag_threshold_override(tiny_bundle):
    none = ContentClassifier(tiny_bundle, tag_threshold=1.0).classify(TITLES[0])[0]
    all_ = ContentClassifier(tiny_bundle, tag_threshold=0.0).classify(TITLES[0])[0]
    assert none.tags == () and len(all_.tags) == len(TAGS)


def test_huge_and_odd_texts(clf):
    odd = ["新闻" * 50_000, "a\x00b\x01c", "emoji 😀 新闻", "bad surrogate \ud800 here", "Grüße 東京 مرحبا"]
    results = clf.classify(odd)
    assert len(results) == len(odd) and all(r.primary in LABELS for r in results)


@pytest.mark.parametrize("bad, exc, msg", [
    ("", ValueError, "text 0 is empty"),
    (["ok", "   "], ValueError, "text 1 is empty"),
    ([b"bytes"], TypeError, "text 0 is bytes"),
    (b"bytes", TypeError, "bytes"),
    (["ok", None], TypeError, "text 1 must be a str, got NoneType"),
    ([3.5], TypeError, "text 0 must be a str, got float"),
    (42, TypeError, "sequence of str"),
])
def test_bad_texts(clf, bad, exc, msg):
    with pytest.raises(exc, match=msg):
        clf.classify(bad)


def test_bad_arguments(tiny_bundle):
    with pytest.raises(ValueError, match="unknown profile 'watch'"):
        ContentClassifier(tiny_bundle, profile="watch")
    with pytest.raises(ValueError, match="threads"):
        ContentClassifier(tiny_bundle, threads=0)
    with pytest.raises(ValueError, match="tag_threshold"):
        ContentClassifier(tiny_bundle, tag_threshold=1.5)
    clf = ContentClassifier(tiny_bundle)
    with pytest.raises(ValueError, match="one id per text"):
        clf.classify(TITLES[:2], ids=["only-one"])


def test_empty_list(clf):
    assert clf.classify([]) == []


def test_runtime_never_imports_torch(tiny_bundle):
    code = ("import sys, edge_rec; c = edge_rec.ContentClassifier(sys.argv[1]); c.classify(['新闻标题']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_bundle)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_classification_round_trips_through_json(clf):
    import json

    from edge_rec import Classification
    r = clf.classify(TITLES[2])[0]
    back = Classification.from_dict(json.loads(json.dumps(r.to_dict(with_vector=True))))
    assert (back.primary, back.tags) == (r.primary, tuple((t, round(p, 6)) for t, p in r.tags))
    np.testing.assert_allclose(back.vector, r.vector, atol=1e-6)
    with pytest.raises(ValueError, match="vector"):
        Classification.from_dict(r.to_dict())  # written without the vector: cannot come back
    with pytest.raises(ValueError, match="malformed"):
        Classification.from_dict({**r.to_dict(with_vector=True), "tags": ["x"]})


def test_index_calibration_maps_c_to_a_percentile_within_its_category(tiny_export, tmp_path):
    from conftest import LABELS, make_bundle
    from edge_rec_export.bundle.package_classifier import index_calibration

    raw = ContentClassifier(make_bundle(tmp_path / "raw", tiny_export[2])).classify(TITLES)
    probs = (np.eye(len(LABELS))[[LABELS.index(r.primary) for r in raw]], None, np.array([r.index for r in raw]))
    calibration = index_calibration(probs, LABELS, min_titles=100)  # too few titles: every label gets all titles'
    calibrated = ContentClassifier(make_bundle(tmp_path / "cal", tiny_export[2],
                                               extra={"index_calibration": calibration})).classify(TITLES)
    c = np.array([r.index for r in calibrated])
    # spans [0, 1] (up to the 6-digit rounding of the stored quantiles)
    assert c.min() == pytest.approx(0.0, abs=1e-3) and c.max() == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_array_equal(np.argsort([r.index for r in raw]), np.argsort(c))  # order kept
    with pytest.raises(BundleError, match="index_calibration"):
        load_bundle(make_bundle(tmp_path / "bad", tiny_export[2],
                                extra={"index_calibration": {"quantiles": {"story": [0.5, 0.2]}}}))


def test_character_part_reads_the_texts_code_points(tmp_path):
    """A classifier with a character part: the runtime feeds each text's code points (edge_rec/char_codes.py) and its
    probabilities match torch's on the same text; without the texts, predict refuses."""
    import torch

    from conftest import make_bundle, random_batch, tiny_model
    from edge_rec.char_codes import char_codes
    from edge_rec_export.bundle.classifier_bundle import export_classifier
    from edge_rec_export.models.ngram_wide import HashedTfidf, WideConfig

    model = tiny_model()
    model.cfg.char_wide = WideConfig(101, model.cfg.n_primary)
    model.char_wide = HashedTfidf(model.cfg.char_wide)
    torch.nn.init.normal_(model.char_wide.table.weight, std=3.0)  # strong enough to move the answer
    torch.nn.init.uniform_(model.char_wide.idf.weight, 1.0, 6.0)
    batch = random_batch(model.cfg.encoder.vocab_size)
    chars = torch.from_numpy(char_codes(["股市大涨", "Hello 世界", "故宫", "a"]))
    _, int8, _ = export_classifier(model, tmp_path / "x", {**batch, "char_ids": chars})
    clf = ContentClassifier(make_bundle(tmp_path / "b", int8), cache_size=0)
    assert clf.reads_chars
    title = "周杰伦与昆凌"
    enc = clf.tokenizer.encode(title)
    ids = torch.tensor([enc.ids])
    with torch.no_grad():
        want = model(ids, torch.ones_like(ids), torch.from_numpy(char_codes([title]))).primary_logits.softmax(-1)[0]
        plain = model(ids, torch.ones_like(ids), torch.zeros(1, 1, dtype=torch.long)).primary_logits.softmax(-1)[0]
    got = clf.classify([title])[0]
    assert abs(got.primary_prob - float(want.max())) < 0.03 and got.primary == LABELS[int(want.argmax())]
    assert float((want - plain).abs().max()) > 0.05  # the characters did change the answer
    with pytest.raises(ValueError, match="also reads the texts' characters"):
        clf.predict(np.array([enc.ids]), np.ones((1, len(enc.ids)), np.int64))
