"""Classifier variants, each a callable texts -> results, built once per (variant, threads)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edge_rec import ContentClassifier, default_bundle_path, load_bundle

VARIANTS = ["teacher-fp32-torch", "student-fp32-ort", "student-int8-ort", "student-int8-ort-format"]


def _ort(bundle: Path, threads: int):
    clf = ContentClassifier(bundle, threads=threads, cache_size=0)  # no cache: every call runs the model
    return clf.classify


def build(variant: str, threads: int, work: Path, tmp: Path):
    """Return (callable, reason-to-skip or None)."""
    bundle = default_bundle_path()
    if variant == "student-int8-ort":
        return _ort(_without_ort_file(bundle, tmp), threads), None
    if variant == "student-int8-ort-format":
        from export.mobile_bundle import make_mobile_bundle
        return _ort(make_mobile_bundle(bundle, tmp / "mobile"), threads), None
    if not (work / "student" / "model.json").exists():
        return None, f"{work}/student missing: run python -m export.build_default"
    import torch

    from export.classifier_bundle import export_classifier, write_classifier_bundle
    from export.train_classifier import load_without_embeddings
    from tokenizers import Tokenizer
    b = load_bundle(bundle)
    tok = b.tokenizer
    if variant == "student-fp32-ort":
        student, _ = load_without_embeddings(work / "student", work / "prep")
        ids = torch.tensor([[0, 6, 2]])
        fp32, _, _ = export_classifier(student, tmp, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        out = write_classifier_bundle(tmp / "fp32", fp32, Tokenizer.from_file(str(b.file(tok["file"]))), name="fp32",
                                      primary_labels=b.primary_labels, tags=b.tags, max_length=tok["max_length"],
                                      pad_id=tok["pad_id"])
        return _ort(out, threads), None
    if variant == "teacher-fp32-torch":
        if not (work / "teacher.pt").exists():
            return None, f"{work}/teacher.pt missing: run python -m export.build_default"
        from export.classifier import InferenceHead, load_checkpoint
        head = InferenceHead(load_checkpoint(work / "teacher.pt")[0])
        tokenizer = Tokenizer.from_file(str(b.file(tok["file"])))
        tokenizer.enable_truncation(tok["max_length"])
        tokenizer.enable_padding(pad_id=tok["pad_id"])
        torch.set_num_threads(threads)

        def run(texts):
            enc = tokenizer.encode_batch(texts)
            ids = torch.tensor([e.ids for e in enc])
            mask = torch.tensor([e.attention_mask for e in enc])
            with torch.no_grad():
                return head(ids, mask)
        return run, None
    raise ValueError(f"unknown variant {variant!r}")


def _without_ort_file(bundle: Path, tmp: Path) -> Path:
    """A copy of the bundle that runs the .onnx model even when an .ort file is shipped."""
    import json
    m = load_bundle(bundle).manifest
    if "classifier.ort" not in m["files"]:
        return bundle
    out = Path(tempfile.mkdtemp(dir=tmp))
    for name in m["files"]:
        if name != "classifier.ort":
            shutil.copyfile(bundle / name, out / name)
    del m["files"]["classifier.ort"]
    m["models"]["classifier"].pop("ort_file", None)
    (out / "manifest.json").write_text(json.dumps(m, ensure_ascii=False))
    return out
