"""DSSM two-tower recall model over label features (seed 000, S3 model recall): the first interaction rate.

User tower: the mean label embedding of the user's history items -> MLP -> unit vector. Item tower: the item's
label embedding and category index c -> MLP -> unit vector. Score: sigmoid(scale * cosine + bias). It is cheap
enough to score thousands of candidates per call.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edge_rec_export.models.encoder import require_positive
from edge_rec_export.models.item_features import LabelBag, masked_mean


@dataclass
class DSSMConfig:
    n_labels: int
    max_labels: int = 4
    history_length: int = 50
    label_dim: int = 32
    hidden: int = 64
    out_dim: int = 32

    def __post_init__(self):
        require_positive(self, ("n_labels", "max_labels", "history_length", "label_dim", "hidden", "out_dim"))

    def to_dict(self) -> dict:
        return asdict(self)


def tower(n_in: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, out))


class DSSM(nn.Module):
    input_names = ("hist_labels", "hist_mask", "cand_labels", "cand_index")
    feed_names = input_names  # the same for every config (CTRModel's depend on vector_dim)

    def __init__(self, cfg: DSSMConfig):
        super().__init__()
        self.cfg = cfg
        self.bag = LabelBag(cfg.n_labels, cfg.label_dim)
        self.user_tower = tower(cfg.label_dim, cfg.hidden, cfg.out_dim)
        self.item_tower = tower(cfg.label_dim + 1, cfg.hidden, cfg.out_dim)
        self.scale = nn.Parameter(torch.tensor(5.0))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def logits(self, hist_labels, hist_mask, cand_labels, cand_index) -> torch.Tensor:
        """hist_labels (Bh, H, K), hist_mask (Bh, H), cand_labels (N, K), cand_index (N,); Bh is 1 or N -> (N,)."""
        user = F.normalize(self.user_tower(masked_mean(self.bag(hist_labels), hist_mask)), dim=-1)  # (Bh, D)
        item = F.normalize(self.item_tower(torch.cat([self.bag(cand_labels), cand_index[:, None]], dim=-1)), dim=-1)
        return self.scale * (user * item).sum(dim=-1) + self.bias  # (N,)

    def forward(self, hist_labels, hist_mask, cand_labels, cand_index) -> torch.Tensor:
        return torch.sigmoid(self.logits(hist_labels, hist_mask, cand_labels, cand_index))
