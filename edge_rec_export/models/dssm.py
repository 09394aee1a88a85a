"""DSSM two-tower recall model over label features (seed 000, S3 model recall): the first interaction rate.

User tower: the mean label embedding of the user's history items -> MLP -> unit vector. Item tower: the item's
label embedding and category index c -> MLP -> unit vector. Where items recur in the log, each item's id embedding
(row 0, zeros, for an id the log never had) is added to its label embedding on both sides, and where the log's
histories carry several event types, each history item's vector is scaled and shifted by its event on the user
side. Score: sigmoid(scale * cosine + bias). It is cheap enough to score thousands of candidates per call.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edge_rec_export.models.encoder import require_positive
from edge_rec_export.models.ctr import feed_names
from edge_rec_export.models.item_features import EventEmbedding, IdEmbedding, LabelBag, masked_mean


@dataclass
class DSSMConfig:
    n_labels: int
    max_labels: int = 4
    history_length: int = 50
    label_dim: int = 32
    hidden: int = 64
    out_dim: int = 32
    n_items: int = 0  # items with an id embedding; 0: content alone
    n_events: int = 0  # history event types read (hist_event); 0: every history item a click

    def __post_init__(self):
        require_positive(self, ("n_labels", "max_labels", "history_length", "label_dim", "hidden", "out_dim"))
        if min(self.n_items, self.n_events) < 0:
            raise ValueError(f"DSSMConfig: n_items and n_events must be >= 0, got {self.n_items}, {self.n_events}")

    def to_dict(self) -> dict:
        return asdict(self)


def tower(n_in: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, out))


class DSSM(nn.Module):
    input_names = ("hist_labels", "hist_item", "hist_event", "hist_mask", "cand_labels", "cand_item", "cand_index")

    def __init__(self, cfg: DSSMConfig):
        super().__init__()
        self.cfg = cfg
        self.bag = LabelBag(cfg.n_labels, cfg.label_dim)
        self.ids = IdEmbedding(cfg.n_items, cfg.label_dim) if cfg.n_items else None
        self.user_tower = tower(cfg.label_dim, cfg.hidden, cfg.out_dim)
        self.item_tower = tower(cfg.label_dim + 1, cfg.hidden, cfg.out_dim)
        self.scale = nn.Parameter(torch.tensor(5.0))
        self.bias = nn.Parameter(torch.tensor(0.0))
        # Made last, so the other weights start as in a model without events (same seed): it adds only this.
        self.event = EventEmbedding(cfg.n_events, cfg.label_dim) if cfg.n_events else None

    @property
    def feed_names(self) -> tuple[str, ...]:
        return feed_names(self.input_names, self.cfg)

    def embed(self, labels, item=None) -> torch.Tensor:
        """labels (..., K), item (...) -> (..., label_dim): the label bag plus the id embedding."""
        return self.bag(labels) if self.ids is None else self.bag(labels) + self.ids(item)

    def user_side(self, hist_labels, hist_mask, hist_item=None, hist_event=None) -> torch.Tensor:
        """hist_labels (Bh, H, K), hist_mask (Bh, H), hist_item / hist_event (Bh, H) -> (Bh, D + 1): [scale * unit
        user vector, bias]."""
        e_hist = self.embed(hist_labels, hist_item)
        if self.event is not None:
            e_hist = self.event(e_hist, hist_event)
        user = F.normalize(self.user_tower(masked_mean(e_hist, hist_mask)), dim=-1)
        return torch.cat([self.scale * user, self.bias.expand(len(user), 1)], dim=-1)

    def item_side(self, cand_labels, cand_index, cand_item=None) -> torch.Tensor:
        """cand_labels (N, K), cand_index (N,), cand_item (N,) -> (N, D + 1): [unit item vector, 1]."""
        item = F.normalize(self.item_tower(torch.cat([self.embed(cand_labels, cand_item), cand_index[:, None]],
                                                     dim=-1)), dim=-1)
        return torch.cat([item, torch.ones_like(item[:, :1])], dim=-1)

    def logits(self, hist_labels, hist_mask, cand_labels, cand_index, hist_item=None, cand_item=None,
               hist_event=None, hist_of=None) -> torch.Tensor:
        """hist_labels (Bh, H, K), hist_mask (Bh, H), cand_labels (N, K), cand_index (N,); Bh is 1 or N, or any
        with `hist_of` (N,) naming each candidate's history row -> (N,): scale * cosine(user, item) + bias, one dot
        product of the two sides, so a catalogue's item sides can be computed once and each user scored against
        all of them with a matrix-vector product."""
        user = self.user_side(hist_labels, hist_mask, hist_item, hist_event)
        return ((user if hist_of is None else user[hist_of])
                * self.item_side(cand_labels, cand_index, cand_item)).sum(dim=-1)

    def forward(self, hist_labels, hist_mask, cand_labels, cand_index, hist_item=None, cand_item=None,
                hist_event=None) -> torch.Tensor:
        return torch.sigmoid(self.logits(hist_labels, hist_mask, cand_labels, cand_index, hist_item, cand_item,
                                          hist_event))


class DSSMSide(nn.Module):
    """One side of a DSSM as a graph of its own (DSSMUser, DSSMItems): the recall score is sigmoid(items @ user.T)."""

    def __init__(self, dssm: DSSM):
        super().__init__()
        self.dssm, self.cfg = dssm, dssm.cfg


class DSSMUser(DSSMSide):
    """(hist_labels, hist_mask[, hist_item, hist_event]) -> user (1, D + 1)."""

    @property
    def feed_names(self) -> tuple[str, ...]:
        return feed_names(("hist_labels", "hist_mask", "hist_item", "hist_event"), self.cfg)

    def forward(self, hist_labels, hist_mask, hist_item=None, hist_event=None) -> torch.Tensor:
        return self.dssm.user_side(hist_labels, hist_mask, hist_item, hist_event)


class DSSMItems(DSSMSide):
    """(cand_labels, cand_index[, cand_item]) -> items (N, D + 1)."""

    @property
    def feed_names(self) -> tuple[str, ...]:
        return feed_names(("cand_labels", "cand_index", "cand_item"), self.cfg)

    def forward(self, cand_labels, cand_index, cand_item=None) -> torch.Tensor:
        return self.dssm.item_side(cand_labels, cand_index, cand_item)
