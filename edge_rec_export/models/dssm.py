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

    def user_side(self, hist_labels, hist_mask) -> torch.Tensor:
        """hist_labels (Bh, H, K), hist_mask (Bh, H) -> (Bh, D + 1): [scale * unit user vector, bias]."""
        user = F.normalize(self.user_tower(masked_mean(self.bag(hist_labels), hist_mask)), dim=-1)
        return torch.cat([self.scale * user, self.bias.expand(len(user), 1)], dim=-1)

    def item_side(self, cand_labels, cand_index) -> torch.Tensor:
        """cand_labels (N, K), cand_index (N,) -> (N, D + 1): [unit item vector, 1]."""
        item = F.normalize(self.item_tower(torch.cat([self.bag(cand_labels), cand_index[:, None]], dim=-1)), dim=-1)
        return torch.cat([item, torch.ones_like(item[:, :1])], dim=-1)

    def logits(self, hist_labels, hist_mask, cand_labels, cand_index) -> torch.Tensor:
        """hist_labels (Bh, H, K), hist_mask (Bh, H), cand_labels (N, K), cand_index (N,); Bh is 1 or N -> (N,):
        scale * cosine(user, item) + bias, one dot product of the two sides, so a catalogue's item sides can be
        computed once and each user scored against all of them with a matrix-vector product."""
        return (self.user_side(hist_labels, hist_mask) * self.item_side(cand_labels, cand_index)).sum(dim=-1)

    def forward(self, hist_labels, hist_mask, cand_labels, cand_index) -> torch.Tensor:
        return torch.sigmoid(self.logits(hist_labels, hist_mask, cand_labels, cand_index))


class DSSMSide(nn.Module):
    """One side of a DSSM as a graph of its own (DSSMUser, DSSMItems): the recall score is sigmoid(items @ user.T)."""
    feed_names: tuple[str, ...] = ()

    def __init__(self, dssm: DSSM):
        super().__init__()
        self.dssm, self.cfg = dssm, dssm.cfg


class DSSMUser(DSSMSide):
    """(hist_labels, hist_mask) -> user (1, D + 1)."""
    feed_names = ("hist_labels", "hist_mask")

    def forward(self, hist_labels, hist_mask) -> torch.Tensor:
        return self.dssm.user_side(hist_labels, hist_mask)


class DSSMItems(DSSMSide):
    """(cand_labels, cand_index) -> items (N, D + 1)."""
    feed_names = ("cand_labels", "cand_index")

    def forward(self, cand_labels, cand_index) -> torch.Tensor:
        return self.dssm.item_side(cand_labels, cand_index)
