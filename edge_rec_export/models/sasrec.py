"""SASRec (Kang & McAuley 2018), small: a causal self-attention encoder over a user's item sequence whose last state
scores every item by a dot product with the items' embeddings. A yardstick of the full-catalogue evaluation
(training/full_catalogue.py), never shipped: it reads item ids only, so it cannot rank an item the log never had.
Trained with a softmax over the whole catalogue at every position (cheap at MovieLens sizes).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from edge_rec_export.models.encoder import require_positive


@dataclass
class SASRecConfig:
    n_items: int  # item rows 1..n_items; row 0 pads
    max_len: int = 50
    dim: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2

    def __post_init__(self):
        require_positive(self, ("n_items", "max_len", "dim", "blocks", "heads"))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"SASRecConfig.dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class SASRec(nn.Module):
    def __init__(self, cfg: SASRecConfig):
        super().__init__()
        self.cfg = cfg
        self.items = nn.Embedding(cfg.n_items + 1, cfg.dim, padding_idx=0)
        self.positions = nn.Embedding(cfg.max_len, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, dim_feedforward=cfg.dim, dropout=cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq (B, L) item rows, left-padded with 0 -> states (B, L, dim); a state sees its position and before.
        Padded positions carry zeros in (no key mask: a query whose keys are all padding would have no softmax)."""
        length = seq.shape[1]
        real = (seq > 0).unsqueeze(-1).to(self.items.weight.dtype)
        x = (self.items(seq) * math.sqrt(self.cfg.dim) + self.positions.weight[-length:]) * real
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=seq.device)
        return self.norm(self.encoder(self.drop(x), mask=causal, is_causal=True))

    def scores(self, seq: torch.Tensor) -> torch.Tensor:
        """seq (B, L) -> the last state's score of every item row (B, n_items + 1)."""
        return self(seq)[:, -1] @ self.items.weight.T
