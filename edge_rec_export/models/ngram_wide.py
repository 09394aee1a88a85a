"""The classifier's wide parts: n-grams of ids hashed into one embedding table, mean-pooled (fastText-style).

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


class HashedNgrams(nn.Module):
    """(input_ids, attention_mask) (B, T) -> (B, dim): mean of the embeddings of every n-gram of real tokens."""

    def __init__(self, cfg: WideConfig):
        super().__init__()
        self.cfg = cfg
        self.table = nn.Embedding(cfg.buckets, cfg.dim)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        rows, weights = [], []
        for n in self.cfg.orders:
            width = t - n + 1  # (B, width) n-grams starting at each position
            key = torch.full_like(input_ids[:, :width], n)
            valid = torch.ones_like(attention_mask[:, :width])
            for j in range(n):
                key = key * PRIME + input_ids[:, j:j + width]
                valid = valid * attention_mask[:, j:j + width]
            rows.append(torch.remainder(key, self.cfg.buckets))
            weights.append(valid)
        idx, w = torch.cat(rows, dim=1), torch.cat(weights, dim=1).to(self.table.weight.dtype)  # (B, N)
        summed = (self.table(idx) * w[..., None]).sum(dim=1)  # (B, dim)
        return summed / w.sum(dim=1, keepdim=True).clamp(min=1.0)

    def of_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, W) ids where 0 is padding (the character part's code points, edge_rec/char_codes.py) -> (B, dim)."""
        return self(codes, (codes > 0).to(codes.dtype))
