"""The classifier's wide parts: n-grams of ids hashed into one table, inside the graph.

The token part (`HashedNgrams`) mean-pools embeddings of hashed token n-grams (fastText-style); the character part
(`HashedTfidf`) is a linear model on TF-IDF vectors of hashed character n-grams, the yardstick's model in the graph.

Short Chinese titles are classified well by character n-grams (a TF-IDF + linear model is a strong baseline); a
shallow encoder misses some of that surface signal. The n-grams are hashed *inside the graph* (integer
Mul/Add/Mod) from the token ids (the `wide` part) or from the characters' code points (the `char_wide` part, whose
only runtime code is edge_rec/char_codes.py).

Hash of an n-gram (t_0 .. t_{n-1}): ((n * P + t_0) * P + t_1) ... mod buckets, P = 1,000,003. With ids < 2^21
(token ids, or Unicode code points for the character part) the largest intermediate (a trigram) stays below
5.1e18 < 2^63, so torch and onnxruntime agree exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

PRIME = 1_000_003
MAX_ORDER = 3  # with PRIME and ids < 2^21, order 4 would overflow int64


@dataclass
class WideConfig:
    buckets: int = 0  # rows of the hashed table; 0 = no wide part
    dim: int = 64
    orders: tuple = (1, 2, 3)

    def __post_init__(self):
        self.orders = tuple(self.orders)
        if self.buckets < 0 or self.dim <= 0:
            raise ValueError(f"WideConfig needs buckets >= 0 and dim > 0, got {self.buckets} and {self.dim}")
        if not self.orders or any(not 1 <= n <= MAX_ORDER for n in self.orders):
            raise ValueError(f"WideConfig.orders must be n-gram orders in 1..{MAX_ORDER}, got {self.orders}")

    def to_dict(self) -> dict:
        return asdict(self)


def hashed_ngrams(ids: torch.Tensor, mask: torch.Tensor, cfg: WideConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and 0/1 mask -> (B, N) bucket of every n-gram of the orders in `cfg`, and its 0/1 validity (an
    n-gram is valid when all its ids are real). The one hash of both wide parts, in training and in the graph."""
    t = ids.shape[1]
    rows, weights = [], []
    for n in cfg.orders:
        width = t - n + 1  # (B, width) n-grams starting at each position
        key = torch.full_like(ids[:, :width], n)
        valid = torch.ones_like(mask[:, :width])
        for j in range(n):
            key = key * PRIME + ids[:, j:j + width]
            valid = valid * mask[:, j:j + width]
        rows.append(torch.remainder(key, cfg.buckets))
        weights.append(valid)
    return torch.cat(rows, dim=1), torch.cat(weights, dim=1)


class HashedNgrams(nn.Module):
    """(input_ids, attention_mask) (B, T) -> (B, dim): mean of the embeddings of every n-gram of real tokens."""

    def __init__(self, cfg: WideConfig):
        super().__init__()
        self.cfg = cfg
        self.table = nn.Embedding(cfg.buckets, cfg.dim)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        idx, w = hashed_ngrams(input_ids, attention_mask, self.cfg)
        w = w.to(self.table.weight.dtype)
        summed = (self.table(idx) * w[..., None]).sum(dim=1)  # (B, dim)
        return summed / w.sum(dim=1, keepdim=True).clamp(min=1.0)


class HashedTfidf(nn.Module):
    """(B, W) character codes, 0 = padding (edge_rec/char_codes.py) -> (B, dim) class scores of a linear model on
    the text's TF-IDF vector over hashed character n-grams: x_b = tf_b idf_b / sqrt(sum over the text's n-gram
    occurrences of idf^2) (the L2 norm exactly when no n-gram repeats, as in almost every title), scores = x W + b.
    Trained outside torch (a linear SVM on the same features: `sparse_features`) and copied in."""

    def __init__(self, cfg: WideConfig):
        super().__init__()
        self.cfg = cfg
        self.table = nn.Embedding(cfg.buckets, cfg.dim)
        nn.init.zeros_(self.table.weight)
        self.bias = nn.Parameter(torch.zeros(cfg.dim))
        self.idf = nn.Embedding(cfg.buckets, 1)
        nn.init.ones_(self.idf.weight)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        idx, w = hashed_ngrams(codes, (codes > 0).to(codes.dtype), self.cfg)
        idf = self.idf(idx)[..., 0] * w.to(self.table.weight.dtype)  # (B, N), 0 on invalid n-grams
        summed = (self.table(idx) * idf[..., None]).sum(dim=1)
        return summed / idf.square().sum(dim=1, keepdim=True).sqrt().clamp(min=1e-6) + self.bias

    def sparse_features(self, codes: torch.Tensor):
        """The same x as a scipy CSR matrix (B, buckets), for fitting W and b with scikit-learn."""
        from scipy import sparse

        idx, w = hashed_ngrams(codes, (codes > 0).to(codes.dtype), self.cfg)
        idf = (self.idf(idx)[..., 0] * w).detach().numpy()
        rows = torch.arange(len(codes))[:, None].expand_as(idx).numpy()
        keep = idf > 0
        norm = np.sqrt(np.square(idf).sum(1, keepdims=True)).clip(min=1e-6)
        return sparse.csr_matrix(((idf / norm)[keep], (rows[keep], idx.numpy()[keep])),
                                 shape=(len(codes), self.cfg.buckets))  # repeated n-grams sum: tf * idf
