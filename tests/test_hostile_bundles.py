"""Hostile bundles whose hashes were re-computed (issue 36): each refused at load with one BundleError naming the field
and the file (CLI: one line, exit 2), or its model's bad output stopped at run time."""
import json
import time

import numpy as np
import pytest

from edge_rec import ContentClassifier, EdgeRecommender, load_bundle
from edge_rec.bundle import BundleError, sha256
from edge_rec.cli import main as cli_main


def rewrite(bundle, change_manifest=None, change_tokenizer=None, raw=None) -> None:
    """Edit a bundle's manifest and/or tokenizer.json and re-hash: what anyone who can write the bundle can do."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    if change_tokenizer:
        path = bundle / manifest["tokenizer"]["file"]
        tok = json.loads(path.read_text(encoding="utf-8"))
        change_tokenizer(tok)
        path.write_text(json.dumps(tok), encoding="utf-8")
        manifest["files"][path.name] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    if change_manifest:
        change_manifest(manifest)
    (bundle / "manifest.json").write_text(raw(manifest) if raw else json.dumps(manifest), encoding="utf-8")


def normalizer(rule: dict):
    def change(tok):
        tok["normalizer"] = {"type": "Sequence", "normalizers": [rule, tok["normalizer"]]}
    return change


HOSTILE = {  # name -> (rewrite kwargs, the message)
    "backtracking regex": (dict(change_tokenizer=normalizer(
        {"type": "Replace", "pattern": {"Regex": "a*a*a*[^a]"}, "content": ""})), "regex pattern"),
    "panicking regex": (dict(change_tokenizer=normalizer(
        {"type": "Replace", "pattern": {"Regex": r"(\w*)*\d$"}, "content": ""})), "regex pattern"),
    "growing replace": (dict(change_tokenizer=normalizer(
        {"type": "Replace", "pattern": {"String": "a"}, "content": "b" * 20_000})), "longer"),
    "split regex": (dict(change_tokenizer=lambda tok: tok.update(pre_tokenizer={
        "type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": False})), "regex pattern"),
    "unknown normalizer": (dict(change_tokenizer=normalizer({"type": "Wasm", "code": "..."})), "not allowed"),
    "long piece": (dict(change_tokenizer=lambda tok: tok["model"]["vocab"].append(["x" * 100_000, -1.0])),
                   "at most 512 characters"),
    "huge prefix": (dict(change_manifest=lambda m: m["tokenizer"].update(prefix="x" * (8 << 20))),
                    "tokenizer.prefix"),
    "max_length past the positions": (dict(change_manifest=lambda m: m["tokenizer"].update(max_length=600)),
                                      "position table"),
    "4,000-digit max_length": (dict(change_manifest=lambda m: m["tokenizer"].update(max_length=10 ** 3999)),
                               "tokenizer.max_length must be an integer"),
    "outputs removed": (dict(change_manifest=lambda m: m["models"]["classifier"].pop("outputs")),
                        "models.classifier.outputs"),
    "list-valued name": (dict(change_manifest=lambda m: m.update(name=["a", "b"])), "'name' must be a string"),
    "duplicate keys": (dict(raw=lambda m: json.dumps(m)[:-1] + ', "name": "other"}'), "appears twice"),
    "declared shape off": (dict(change_manifest=lambda m: m["models"]["ranker"]["inputs"][0].update(
        shape=[1, 99, 3])), "the manifest declares"),
    "5,000 extra labels": (dict(change_manifest=lambda m: m["ranking"]["labels"].extend(
        f"tag:x{i}" for i in range(5000))), "fewer rows"),
    "3 labels only": (dict(change_manifest=lambda m: m["ranking"].update(labels=m["ranking"]["labels"][:3])),
                      "more rows"),
    "list-valued knob": (dict(change_manifest=lambda m: m["pipeline"].update(lam=[0.5])), "pipeline: lam"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_bundle_is_refused_at_load_with_one_error(rec_bundle, name, capsys):
    kwargs, message = HOSTILE[name]
    rewrite(rec_bundle, **kwargs)
    t0 = time.perf_counter()
    with pytest.raises(BundleError, match=message) as refused:
        EdgeRecommender(rec_bundle)
    assert time.perf_counter() - t0 < 5.0
    assert "manifest.json" in str(refused.value) or ".onnx" in str(refused.value) or "tokenizer" in str(refused.value)
    assert cli_main(["classify", "一条新闻", "--bundle", str(rec_bundle)]) == 2 or name in (
        "5,000 extra labels", "3 labels only", "list-valued knob", "declared shape off")  # recommend-side fields
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1


def test_the_vocabulary_size_is_bounded(rec_bundle, monkeypatch):
    import edge_rec.tokenizer_rules as rules

    monkeypatch.setattr(rules, "MAX_PIECE_CHARS", 50)
    with pytest.raises(BundleError, match="pieces hold .* characters, past the limit"):
        ContentClassifier(rec_bundle)


def test_a_shipped_style_bundle_passes_every_rule(rec_bundle):
    assert load_bundle(rec_bundle) and EdgeRecommender(rec_bundle).recommend({"history": []}, [
        {"id": "a", "text": "一条新闻"}], k=1)


@pytest.mark.parametrize("damage, message", [
    (lambda out: [o[:1] for o in out], "shape"),  # one row per batch, not per text
    (lambda out: [*out[:3], np.full_like(out[3], np.nan)], "non-finite"),
    (lambda out: [out[0] * 3.0, *out[1:]], "outside"),
])
def test_classifier_outputs_are_checked_at_run_time(rec_bundle, damage, message):
    clf = ContentClassifier(rec_bundle)
    real = clf.session

    class Damaged:  # the real session, its outputs damaged on the way out
        def run(self, names, feeds):
            return damage(real.run(names, feeds))

        def __getattr__(self, name):
            return getattr(real, name)
    clf.session = Damaged()
    with pytest.raises(RuntimeError, match=message):
        clf.classify(["一条新闻", "另一条"])


def test_a_scalar_ranker_score_is_stopped(rec_bundle):
    rec = EdgeRecommender(rec_bundle)
    real = rec.ranker.session

    class Scalar:
        def run(self, names, feeds):
            return [real.run(names, feeds)[0][:1].reshape(())]

        def __getattr__(self, name):
            return getattr(real, name)
    rec.ranker.session = Scalar()
    with pytest.raises(RuntimeError, match="shape"):
        rec.recommend({"history": [{"id": "h", "text": "体育新闻"}]},
                      [{"id": str(i), "text": f"新闻 {i}"} for i in range(5)], k=3)
