"""Seed 003 for a bundle: a behaviour-trained semantic branch of the content classifier.

The branch is a copy of the classifier's encoder and vector projection that shares the classifier's word-embedding
table (frozen); it starts exactly at the classifier's `vector`. `train_semantic --branch` trains its layers and
projection end to end with the behaviour model (residual head on top); the bundle then carries it inside the
classifier graph as a fifth output, `semantic_vector`: one session, one embedding table, two layer stacks.

For a GPU machine that cannot hold the whole bundle, `compact` keeps only the embedding rows a log's titles use.

    python -m edge_rec_export.bundle.semantic_branch compact --log-file work/sim/log.pkl.gz --out work/device-zh/branch-init.pt
    python -m edge_rec_export.bundle.semantic_branch export --run work/semantic/zh-e2e-pooldot --out work/semantic/zh-branch-onnx
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from edge_rec.sessions import make_session
from edge_rec_export.models.behaviour_encoder import BehaviourEncoderConfig, BehaviourModel, ItemHead
from edge_rec_export.models.classifier import ContentClassifierModel, InferenceHead
from edge_rec_export.bundle.classifier_bundle import export_classifier
from edge_rec_export.models.encoder import Encoder, EncoderConfig
from edge_rec_export.data.interactions import read_log_file
from edge_rec_export.bundle.onnx_export import run_onnx
from edge_rec_export.bundle.package_classifier import p50_ms
from edge_rec_export.data.text_vectors import TitleEncoder, tokenise
from edge_rec_export.training.train_classifier import load_prep, load_without_embeddings

FROZEN = ("encoder.word.", "encoder.pos.", "encoder.token_type", "encoder.emb_ln.")  # the embedding stays shared


class SemanticBranch(nn.Module):
    """(input_ids, attention_mask) -> unit vector: the encoder's mean-pooled output through the projection."""

    def __init__(self, encoder: Encoder, project: nn.Linear):
        super().__init__()
        self.encoder, self.project = encoder, project
        for name, p in self.named_parameters():
            p.requires_grad_(not name.startswith(FROZEN))

    @classmethod
    def of(cls, clf: ContentClassifierModel) -> "SemanticBranch":
        encoder = copy.deepcopy(clf.encoder)
        encoder.word = clf.encoder.word  # the same table, not a copy: exported once, frozen for both
        return cls(encoder, copy.deepcopy(clf.project))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(self.encoder(input_ids, attention_mask)[1]), dim=-1)

    def trained_state(self) -> dict[str, torch.Tensor]:
        """What training changes: the layers and the projection."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(FROZEN)}


def compact(clf: ContentClassifierModel, tokenizer, titles: list[str], pad_id: int, path: Path) -> Path:
    """Save a branch over `titles` with only the embedding rows they use (ids remapped) plus the tokenised titles."""
    ids, mask = tokenise(tokenizer, titles, pad_id)
    used, remapped = torch.unique(torch.cat([ids.flatten(), torch.tensor([pad_id])]), return_inverse=True)
    branch = SemanticBranch.of(clf)
    cfg = EncoderConfig(**{**clf.cfg.encoder.to_dict(), "vocab_size": len(used),
                           "pad_id": int((used == pad_id).nonzero())})
    state = {k: v for k, v in branch.state_dict().items() if k != "encoder.word.weight"}
    state["encoder.word.weight"] = clf.encoder.word.weight.detach()[used].clone()
    torch.save({"encoder": cfg.to_dict(), "vector_dim": clf.cfg.vector_dim, "state": state,
                "ids": remapped[:-1].view(ids.shape), "mask": mask}, path)
    return Path(path)


def load_compact(path: Path) -> TitleEncoder:
    """The `TitleEncoder` over the saved titles, its model a `SemanticBranch` at the classifier's weights."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = EncoderConfig(**saved["encoder"])
    branch = SemanticBranch(Encoder(cfg), nn.Linear(cfg.hidden, saved["vector_dim"]))
    branch.load_state_dict(saved["state"])  # requires_grad flags survive loading
    return TitleEncoder(branch, saved["ids"], saved["mask"])


class BranchedInferenceHead(InferenceHead):
    """The classifier's outputs plus the branch's behaviour-trained vector f(branch(text)) as `semantic_vector`."""

    output_names = InferenceHead.output_names + ("semantic_vector",)

    def __init__(self, model: ContentClassifierModel, branch: SemanticBranch, head: ItemHead):
        super().__init__(model)
        self.branch, self.head = branch, head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return (*super().forward(input_ids, attention_mask),
                self.head(self.branch(input_ids, attention_mask)))


def load_trained(clf: ContentClassifierModel, run: Path) -> BranchedInferenceHead:
    """The classifier with the branch and item head of a `train_semantic --branch --finetune-encoder` run."""
    branch = SemanticBranch.of(clf)
    missing, unexpected = branch.load_state_dict(torch.load(run / "branch.pt", map_location="cpu",
                                                            weights_only=True), strict=False)
    if unexpected or any(not k.startswith(FROZEN) for k in missing):
        raise ValueError(f"{run / 'branch.pt'} does not fit this classifier: missing {missing}, unexpected "
                         f"{unexpected}")
    saved = torch.load(run / "behaviour.pt", map_location="cpu", weights_only=True)
    model = BehaviourModel(BehaviourEncoderConfig(**saved["config"]))
    model.load_state_dict(saved["state"])
    return BranchedInferenceHead(clf, branch, model.item).eval()


def export_and_measure(clf: ContentClassifierModel, run: Path, prep: Path, out: Path) -> dict:
    """Export the classifier with a trained branch to ONNX (verified, INT8) and measure what it would add to a
    bundle: size, latency and how closely the INT8 `semantic_vector` follows torch."""
    head = load_trained(clf, run)
    test = load_prep(prep)[0]["test"]
    sample = test.feeds(slice(0, 64))
    _, plain_int8, _ = export_classifier(clf, out / "plain", sample)
    _, int8, diff = export_classifier(clf, out, sample, head)
    with torch.no_grad():
        want = head(**sample)[-1].numpy()
    got = run_onnx(int8, {k: v.numpy() for k, v in sample.items()})[-1]
    one = {k: v.numpy() for k, v in test.feeds(slice(0, 1)).items()}
    sessions = {"plain": make_session(plain_int8, 1), "branched": make_session(int8, 1)}
    return {"parity_fp32_onnx_vs_torch_max_abs": diff,
            "int8_semantic_vector_cosine_to_torch_min": round(float((want * got).sum(1).min()), 4),
            "int8_bytes": {"plain": plain_int8.stat().st_size, "branched": int8.stat().st_size},
            "p50_ms_one_title_1_thread": {k: round(p50_ms(lambda s=s: s.run(None, one)), 3)
                                          for k, s in sessions.items()},
            "tokens": int(test.len[0])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.bundle.semantic_branch", description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["compact", "export"], help="compact: the branch package for training; "
                    "export: ONNX of the classifier with a trained branch, and what it costs")
    ap.add_argument("--prep", type=Path, default=Path("work/prep"))
    ap.add_argument("--student", type=Path, default=Path("work/student"))
    ap.add_argument("--log-file", type=Path, help="compact: the click log whose item titles the branch encodes")
    ap.add_argument("--run", type=Path, help="export: train_semantic output with branch.pt and behaviour.pt")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    clf, _ = load_without_embeddings(a.student, a.prep)
    if a.action == "compact":
        tokenizer = Tokenizer.from_file(str(a.prep / "tokenizer.json"))
        tokenizer.enable_truncation(json.loads((a.prep / "meta.json").read_text(encoding="utf-8"))["max_length"])
        a.out.parent.mkdir(parents=True, exist_ok=True)
        print(compact(clf, tokenizer, read_log_file(a.log_file).items.ids[1:], clf.cfg.encoder.pad_id, a.out))
        return
    report = export_and_measure(clf, a.run, a.prep, a.out)
    (a.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
