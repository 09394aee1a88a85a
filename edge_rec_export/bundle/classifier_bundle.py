"""Classifier model -> verified ONNX (fp32) -> INT8 -> bundle directory."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import torch
from tokenizers import Tokenizer

from edge_rec.char_codes import CHAR_INPUT
from edge_rec_export.bundle.bundle_writer import write_bundle
from edge_rec_export.models.classifier import ContentClassifierModel, InferenceHead
from edge_rec_export.bundle.onnx_export import check_parity, export_onnx
from edge_rec_export.bundle.quantize import quantize_int8

PARITY_ATOL = 1e-4  # fp32 ONNX vs torch, on every output


def export_classifier(model: ContentClassifierModel, workdir: Path, sample: dict[str, torch.Tensor],
                      head: InferenceHead | None = None,
                      calibration: Sequence[dict[str, torch.Tensor]] | None = None) -> tuple[Path, Path, float]:
    """Export fp32, verify it against torch on `sample`, quantize to INT8. Returns (fp32, int8, max abs diff).

    `head` is the graph to export (default: the classifier's own `InferenceHead`); `calibration`, the inputs that
    fix INT8's activation scales (default: `sample`; a bundle uses training texts)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    head = (head or InferenceHead(model)).eval()
    dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
               CHAR_INPUT: {0: "batch", 1: "characters"}}
    fp32 = export_onnx(head, sample, head.output_names, workdir / "classifier.fp32.onnx", dynamic)
    diff = check_parity(head, fp32, sample, head.output_names, PARITY_ATOL)
    feeds = [{k: v.numpy() for k, v in batch.items()} for batch in (calibration or [sample])]
    int8 = quantize_int8(fp32, workdir / "classifier.int8.onnx", feeds)
    return fp32, int8, diff


def write_classifier_bundle(out_dir: Path, onnx_path: Path, tokenizer: Tokenizer, *, name: str,
                            primary_labels: list[str], tags: list[str], max_length: int, pad_id: int,
                            prefix: str = "", pipeline: dict | None = None, metrics: dict | None = None,
                            extra: dict | None = None) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        tok_path = Path(tmp) / "tokenizer.json"
        tokenizer.save(str(tok_path))
        manifest = {"name": name, "primary_labels": primary_labels, "tags": tags,
                    "tokenizer": {"file": "tokenizer.json", "max_length": max_length, "pad_id": pad_id,
                                  "prefix": prefix},
                    "pipeline": {"tag_threshold": 0.5, "batch_size": 32, **(pipeline or {})},
                    "metrics": metrics or {}, **(extra or {})}
        return write_bundle(out_dir, models={"classifier": onnx_path}, tokenizer=tok_path, manifest=manifest)
