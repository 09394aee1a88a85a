"""Classifier variants, each a callable texts -> results, built once per (variant, threads)."""
from __future__ import annotations

from pathlib import Path

from edge_rec import ContentClassifier, default_bundle_path, load_bundle

VARIANTS = ["teacher-fp32-torch", "student-fp32-ort", "student-int8-ort", "student-int8-ort-format"]


def _ort(bundle: Path, threads: int):
    clf = ContentClassifier(bundle, threads=threads, cache_size=0)  # no cache: every call runs the model
    return clf.classify


def build(variant: str, threads: int, work: Path, tmp: Path):
    """Return (callable, reason-to-skip or None)."""
    bundle = load_bundle(default_bundle_path())
    if variant == "student-int8-ort":
        return _ort(bundle.path, threads), None
    if variant == "student-int8-ort-format":
        from edge_rec_export.bundle.mobile_bundle import make_mobile_bundle
        return _ort(make_mobile_bundle(bundle.path, tmp / "mobile"), threads), None
    needed = {"student-fp32-ort": work / "student" / "model.json", "teacher-fp32-torch": work / "teacher.pt"}[variant]
    if not needed.exists():
        return None, f"{needed} missing: run python -m edge_rec_export.build_default"
    import torch
    from tokenizers import Tokenizer
    tok = bundle.tokenizer
    if variant == "student-fp32-ort":
        from edge_rec_export.bundle.classifier_bundle import export_classifier, write_classifier_bundle
        from edge_rec_export.training.train_classifier import load_without_embeddings
        student, _ = load_without_embeddings(work / "student", work / "prep")
        ids = torch.tensor([[0, 6, 2]])
        fp32, _, _ = export_classifier(student, tmp, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        out = write_classifier_bundle(tmp / "fp32", fp32, Tokenizer.from_file(str(bundle.file(tok["file"]))),
                                      name="fp32", primary_labels=bundle.primary_labels, tags=bundle.tags,
                                      max_length=tok["max_length"], pad_id=tok["pad_id"])
        return _ort(out, threads), None
    from edge_rec_export.models.classifier import InferenceHead, load_checkpoint
    head = InferenceHead(load_checkpoint(work / "teacher.pt")[0])
    tokenizer = Tokenizer.from_file(str(bundle.file(tok["file"])))
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
