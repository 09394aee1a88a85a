"""Seed 003: an item feature extractor trained by predicting the behaviour on an exposed item from the history.

Item encoder: a projection head over the text encoder's vector (the encoder itself stays frozen), x -> f(x), unit
norm; with `residual`, f(x) = x + g(x) in the encoder's own space with g starting at zero, so training starts from
the plain vectors and moves away from them only where the behaviour loss pays. Behaviour encoding: embeddings of
the behaviour type (click, skip, ...) and of its time bucket. Fusion of each history item's f(x) with its behaviour
code: add, multiply or an MLP. Prediction network against the exposed item c: target attention over the fused
history then a dot product with f(c) ("attention"), mean pooling then a dot product ("pool_dot"), or an MLP over
the pooled history and f(c) ("mlp"). After training, f serves semantic recall.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edge_rec_export.models.encoder import require_positive
from edge_rec_export.models.item_features import masked_mean

FUSIONS = ("add", "multiply", "mlp")
PREDICTORS = ("attention", "pool_dot", "mlp")


@dataclass
class BehaviourEncoderConfig:
    vector_dim: int = 384
    out_dim: int = 128
    hidden: int = 256
    n_behaviours: int = 2  # 0 = shown and skipped, 1 = clicked
    n_time_buckets: int = 8  # recency buckets, most recent = 0
    history_length: int = 50
    fusion: str = "add"
    predictor: str = "attention"
    residual: bool = False  # f(x) = x + g(x), out_dim = vector_dim

    def __post_init__(self):
        require_positive(self, ("vector_dim", "out_dim", "hidden", "n_behaviours", "n_time_buckets",
                                "history_length"))
        if self.fusion not in FUSIONS or self.predictor not in PREDICTORS:
            raise ValueError(f"fusion must be one of {FUSIONS} and predictor one of {PREDICTORS}, got "
                             f"{self.fusion!r}, {self.predictor!r}")
        if self.residual and self.out_dim != self.vector_dim:
            raise ValueError(f"a residual head keeps the vector's width: out_dim {self.out_dim} != vector_dim "
                             f"{self.vector_dim}")

    def to_dict(self) -> dict:
        return asdict(self)


class ItemHead(nn.Module):
    """x (..., V) -> f(x) (..., D), unit norm: a linear map (the identity when residual) plus a GELU MLP."""

    def __init__(self, cfg: BehaviourEncoderConfig):
        super().__init__()
        self.linear = nn.Identity() if cfg.residual else nn.Linear(cfg.vector_dim, cfg.out_dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(cfg.vector_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.out_dim))
        if cfg.residual:  # start exactly at the plain vectors
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(x) + self.mlp(x), dim=-1)


class BehaviourModel(nn.Module):
    def __init__(self, cfg: BehaviourEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.item = ItemHead(cfg)
        self.behaviour = nn.Embedding(cfg.n_behaviours, cfg.out_dim)
        self.time = nn.Embedding(cfg.n_time_buckets, cfg.out_dim)
        self.fuse = (nn.Sequential(nn.Linear(2 * cfg.out_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.out_dim))
                     if cfg.fusion == "mlp" else None)
        self.predict = (nn.Sequential(nn.Linear(3 * cfg.out_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, 1))
                        if cfg.predictor == "mlp" else None)
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def logits(self, hist_vector, hist_behaviour, hist_time, hist_mask, cand_vector) -> torch.Tensor:
        """hist_vector (B, H, V), hist_behaviour / hist_time (B, H) int64, hist_mask (B, H), cand_vector (B, V)."""
        f_hist, f_cand = self.item(hist_vector), self.item(cand_vector)  # (B, H, D), (B, D)
        code = self.behaviour(hist_behaviour) + self.time(hist_time)  # (B, H, D)
        if self.cfg.fusion == "add":
            fused = f_hist + code
        elif self.cfg.fusion == "multiply":
            fused = f_hist * (1.0 + code)
        else:
            fused = self.fuse(torch.cat([f_hist, code], dim=-1))
        if self.cfg.predictor == "attention":
            scores = (fused * f_cand[:, None]).sum(-1) / math.sqrt(self.cfg.out_dim) + (1.0 - hist_mask) * -1e4
            user = ((torch.softmax(scores, dim=-1) * hist_mask)[..., None] * fused).sum(dim=1)  # (B, D)
        else:
            user = masked_mean(fused, hist_mask)
        if self.predict is not None:
            return self.predict(torch.cat([user, f_cand, user * f_cand], dim=-1)).squeeze(-1)
        return self.scale * (user * f_cand).sum(-1) + self.bias
