"""Seed 004: one model trained on two related targets of the same visits, item click and channel click.

The channel of an item is its set of channel labels (here: a movie's genres, a genre page being the channel). Both
towers share seed 001's item encoder and interest tracking (`CTRModel`). The item tower starts from the CTR
relevance input; the channel tower from the interest pooled by attention against the channel's embedding (the
shared label bag over the item's channel labels only). At each hidden layer each tower adds the other's hidden
vector into its own before the next layer. Loss: (1 - w) * BCE(item click) + w * BCE(channel click).

The item tower alone is the deployed ranker: `forward`/`logits` take the same feeds as `CTRModel`, because the
channel is read from the candidate's own labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edge_rec_export.models.ctr import CTRConfig, CTRModel


@dataclass
class JointCTRConfig(CTRConfig):
    channel_labels: tuple[int, ...] = ()  # label ids (1-based) that name channels
    layers: int = 2
    channel_weight: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        self.channel_labels = tuple(int(i) for i in self.channel_labels)
        if not self.channel_labels or not all(0 < i <= self.n_labels for i in self.channel_labels):
            raise ValueError(f"JointCTRConfig: channel_labels must be label ids in 1..{self.n_labels}")
        if self.layers < 1 or not 0.0 <= self.channel_weight < 1.0:
            raise ValueError(f"JointCTRConfig: layers must be >= 1 and channel_weight in [0, 1), got "
                             f"{self.layers}, {self.channel_weight}")


class JointCTR(CTRModel):
    def __init__(self, cfg: JointCTRConfig):
        super().__init__(cfg)
        is_channel = torch.zeros(cfg.n_labels + 1, dtype=torch.bool)
        is_channel[list(cfg.channel_labels)] = True
        self.register_buffer("is_channel", is_channel, persistent=False)
        self.channel_query = nn.Linear(cfg.label_dim, cfg.hidden)
        self.relevance = None  # replaced by the item tower
        widths = [3 * cfg.hidden + cfg.item_dim] + [cfg.mlp] * cfg.layers
        self.item_tower = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        cwidths = [2 * cfg.hidden + cfg.label_dim] + [cfg.mlp] * cfg.layers
        self.channel_tower = nn.ModuleList(nn.Linear(a, b) for a, b in zip(cwidths, cwidths[1:]))
        self.item_head, self.channel_head = nn.Linear(cfg.mlp, 1), nn.Linear(cfg.mlp, 1)
        self.act, self.drop = nn.GELU(), nn.Dropout(cfg.dropout)

    def both(self, hist_labels, hist_index, hist_mask, cand_labels, cand_index, hist_vector=None,
             cand_vector=None, hist_item=None, cand_item=None, cand_pop=None, hist_event=None, hist_of=None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (item click logits (N,), channel click logits (N,))."""
        a, states, mask = self.features(hist_labels, hist_index, hist_mask, cand_labels, cand_index, hist_vector,
                                        cand_vector, hist_item, cand_item, cand_pop, hist_event, hist_of)
        channel = self.item.bag(torch.where(self.is_channel[cand_labels], cand_labels, 0))  # (N, label_dim)
        q = self.channel_query(channel)
        pooled = self.attend(states, mask, q)[1]
        c = torch.cat([pooled, pooled * q, channel], dim=-1)
        for item_layer, channel_layer in zip(self.item_tower, self.channel_tower):
            a, c = self.drop(self.act(item_layer(a))), self.drop(self.act(channel_layer(c)))
            a, c = a + c, c + a  # the hidden-vector exchange between the towers
        return self.item_head(a).squeeze(-1), self.channel_head(c).squeeze(-1)

    def logits(self, *args, **kwargs) -> torch.Tensor:
        return self.both(*args, **kwargs)[0]
