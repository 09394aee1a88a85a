"""BERT + MMoE content classifier (seed 000, claims 2-4).

Pooled encoder output x feeds n experts f_i(x) = W2_i GELU(W1_i x); task k mixes them with its own softmax gate
g_k(x). Task 1 (classification): h = LayerNorm(GELU(Wc f^1)) -> primary logits (softmax) and secondary-tag logits
(sigmoid). Task 2 (category index): c = sigmoid(W2 GELU(W1 f^2)). The semantic vector is x projected and
L2-normalised. An optional wide part (hashed token n-grams, edge_rec_export/models/ngram_wide.py) is projected and added to x
before the MMoE, so the heads see surface n-grams beside the encoder; the semantic vector stays the encoder's. An
optional character part (`char_wide`: a linear SVM on hashed character n-gram TF-IDF vectors, the yardstick's
model inside the graph) adds its scores to the primary logits: wide & deep at the output, where the two are complementary.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from edge_rec_export.models.encoder import Encoder, EncoderConfig, require_positive
from edge_rec_export.models.ngram_wide import HashedNgrams, HashedTfidf, WideConfig


@dataclass
class ClassifierConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    n_primary: int = 15
    n_tags: int = 300
    n_experts: int = 4
    expert_hidden: int = 256
    expert_dim: int = 192
    tower_hidden: int = 256
    index_hidden: int = 64
    vector_dim: int = 384
    wide: WideConfig = field(default_factory=WideConfig)
    char_wide: WideConfig = field(default_factory=WideConfig)  # dim must be n_primary when on

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        if isinstance(self.wide, dict):
            self.wide = WideConfig(**self.wide)
        if isinstance(self.char_wide, dict):
            self.char_wide = WideConfig(**self.char_wide)
        if self.char_wide.buckets and self.char_wide.dim != self.n_primary:
            raise ValueError(f"ClassifierConfig.char_wide.dim must be n_primary ({self.n_primary}): it scores the "
                             f"classes; got {self.char_wide.dim}")
        require_positive(self, ("n_primary", "n_experts", "expert_hidden", "expert_dim", "tower_hidden",
                                "index_hidden", "vector_dim"))
        if self.n_primary < 2:
            raise ValueError(f"ClassifierConfig.n_primary must be >= 2 (a softmax over categories), got {self.n_primary}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        return cls(**d)


class ClassifierOutput(NamedTuple):
    primary_logits: torch.Tensor  # (B, n_primary)
    tag_logits: torch.Tensor  # (B, n_tags)
    index: torch.Tensor  # (B,) in [0, 1]
    vector: torch.Tensor  # (B, vector_dim), unit norm
    pooled: torch.Tensor  # (B, H)
    hidden: list  # hidden states (B, T, H): the input of the first layer run, then each layer's output


class MMoE(nn.Module):
    def __init__(self, dim_in: int, cfg: ClassifierConfig, n_tasks: int = 2):
        super().__init__()
        self.w1 = nn.ModuleList(nn.Linear(dim_in, cfg.expert_hidden) for _ in range(cfg.n_experts))
        self.w2 = nn.ModuleList(nn.Linear(cfg.expert_hidden, cfg.expert_dim) for _ in range(cfg.n_experts))
        self.gates = nn.ModuleList(nn.Linear(dim_in, cfg.n_experts) for _ in range(n_tasks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        experts = torch.stack([w2(F.gelu(w1(x))) for w1, w2 in zip(self.w1, self.w2)], dim=1)  # (B, n, E)
        return [(gate(x).softmax(dim=-1)[..., None] * experts).sum(dim=1) for gate in self.gates]  # k x (B, E)


class ContentClassifierModel(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.encoder.hidden
        self.encoder = Encoder(cfg.encoder)
        self.mmoe = MMoE(h, cfg)
        self.cls_in = nn.Linear(cfg.expert_dim, cfg.tower_hidden)
        self.cls_ln = nn.LayerNorm(cfg.tower_hidden)
        self.primary = nn.Linear(cfg.tower_hidden, cfg.n_primary)
        self.tags = nn.Linear(cfg.tower_hidden, cfg.n_tags) if cfg.n_tags else None  # a corpus may have no tags
        self.idx1 = nn.Linear(cfg.expert_dim, cfg.index_hidden)
        self.idx2 = nn.Linear(cfg.index_hidden, 1)
        self.project = nn.Linear(h, cfg.vector_dim)
        self.wide = HashedNgrams(cfg.wide) if cfg.wide.buckets else None
        if self.wide is not None:  # starts at zero: adding the wide part leaves a pretrained model's output as it was
            self.wide_proj = nn.Linear(cfg.wide.dim, h)
            nn.init.zeros_(self.wide_proj.weight)
            nn.init.zeros_(self.wide_proj.bias)
        self.char_wide = HashedTfidf(cfg.char_wide) if cfg.char_wide.buckets else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                char_ids: torch.Tensor | None = None) -> ClassifierOutput:
        return self.heads(*self.encoder(input_ids, attention_mask), input_ids, attention_mask, char_ids)

    def heads(self, hidden: list, pooled: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              char_ids: torch.Tensor | None = None) -> ClassifierOutput:
        x = pooled if self.wide is None else pooled + self.wide_proj(self.wide(input_ids, attention_mask))
        f_cls, f_idx = self.mmoe(x)
        t = self.cls_ln(F.gelu(self.cls_in(f_cls)))
        index = torch.sigmoid(self.idx2(F.gelu(self.idx1(f_idx)))).squeeze(-1)
        vector = F.normalize(self.project(pooled), dim=-1)
        primary = self.primary(t)
        if self.char_wide is not None:
            if char_ids is None:
                raise ValueError("this classifier has a character part: pass char_ids (edge_rec.char_codes)")
            primary = primary + self.char_wide(char_ids)
        tags = self.tags(t) if self.tags is not None else t.new_zeros((t.shape[0], 0))
        return ClassifierOutput(primary, tags, index, vector, pooled, hidden)


def stacked(layers: list[nn.Linear]) -> nn.Linear:
    """Linears that read the same input as one: their outputs side by side."""
    out = nn.Linear(layers[0].in_features, sum(l.out_features for l in layers))
    with torch.no_grad():
        out.weight.copy_(torch.cat([l.weight for l in layers]))
        out.bias.copy_(torch.cat([l.bias for l in layers]))
    return out


def block_diagonal(layers: list[nn.Linear]) -> nn.Linear:
    """Linears that read consecutive slices of one input as one: a block-diagonal weight (the zeros add exact 0)."""
    out = nn.Linear(sum(l.in_features for l in layers), sum(l.out_features for l in layers))
    with torch.no_grad():
        out.weight.copy_(torch.block_diag(*(l.weight for l in layers)))
        out.bias.copy_(torch.cat([l.bias for l in layers]))
    return out


class InferenceHead(nn.Module):
    """What the bundle's ONNX graph computes: probabilities, not logits, so the runtime needs no maths of its own.

    The model's maths with its 17 head GEMMs merged into 7: the experts' first layers with the gates (all read x)
    are one, the experts' second layers one (block-diagonal), the two towers' first layers one (block-diagonal over
    [f_cls, f_idx]), the primary and tag outputs one. In an INT8 graph every GEMM also quantizes its input and
    dequantizes its weight, so the graph loses some 30 nodes. A snapshot: built from the model's weights as they
    are when it is made."""

    output_names = ("primary_probs", "tag_probs", "index", "vector")

    def __init__(self, model: ContentClassifierModel):
        super().__init__()
        self.model = model
        mmoe = model.mmoe
        self.x_in = stacked([*mmoe.w1, *mmoe.gates])
        self.experts_out = block_diagonal(list(mmoe.w2))
        self.towers_in = block_diagonal([model.cls_in, model.idx1])
        self.outputs = stacked([model.primary] + ([model.tags] if model.tags is not None else []))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, char_ids: torch.Tensor | None = None):
        m, cfg = self.model, self.model.cfg
        _, pooled = m.encoder(input_ids, attention_mask)
        x = pooled if m.wide is None else pooled + m.wide_proj(m.wide(input_ids, attention_mask))
        split = cfg.n_experts * cfg.expert_hidden
        h = self.x_in(x)
        experts = self.experts_out(F.gelu(h[:, :split])).unflatten(-1, (cfg.n_experts, cfg.expert_dim))  # (B, n, E)
        gates = h[:, split:].unflatten(-1, (-1, cfg.n_experts)).softmax(dim=-1)  # (B, tasks, n)
        mixed = (gates[..., None] * experts[:, None]).sum(dim=2).flatten(1)  # (B, tasks * E): [f_cls, f_idx]
        towers = F.gelu(self.towers_in(mixed))
        out = self.outputs(m.cls_ln(towers[:, :cfg.tower_hidden]))
        primary = out[:, :cfg.n_primary]
        if m.char_wide is not None:
            if char_ids is None:
                raise ValueError("this classifier has a character part: pass char_ids (edge_rec.char_codes)")
            primary = primary + m.char_wide(char_ids)
        index = torch.sigmoid(m.idx2(towers[:, cfg.tower_hidden:])).squeeze(-1)
        vector = F.normalize(m.project(pooled), dim=-1)
        return primary.softmax(dim=-1), torch.sigmoid(out[:, cfg.n_primary:]), index, vector


def save_checkpoint(model: ContentClassifierModel, path, **extra) -> None:
    torch.save({"config": model.cfg.to_dict(), "state_dict": model.state_dict(), **extra}, path)


def load_checkpoint(path) -> tuple[ContentClassifierModel, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = ContentClassifierModel(ClassifierConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
