"""The CTR ranking model of seed 001: the second interaction rate p of a candidate given the user's clicks.

1. Order-feature extraction: each item -> label-bag embedding, category index c, (optionally) its projected
   semantic vector and (where items recur in the log) its id embedding -> item vector e (d). An id the log never
   had is row 0, a zero embedding: such an item is read by its content alone. Where the log's histories carry
   several event types (click, long_view, like, share), each history item's vector is scaled and shifted by its
   event (EventEmbedding).
2. Interest tracking: a GRU over the clicked sequence e_1..e_H -> interest states s_1..s_H.
3. Interest enhancement against the candidate: attention a_t = softmax_t(s_t . W e_cand), then an attention-updated
   GRU (AUGRU: the update gate scaled by a_t) over s_1..s_H, so interests relevant to the candidate dominate the
   final state and drift in the sequence is followed.
4. Relevance network: MLP over [final AUGRU state, attention-pooled interest, e_cand, interest * candidate] and,
   where the log gives it, the candidate's popularity up to the visit -> logit.

The GRUs are written as cells unrolled over the fixed history length so that the ONNX graph is plain MatMuls
(quantizable, no Loop/Scan). History rows may be one user (Bh = 1) shared by N candidates, or one per candidate.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from edge_rec_export.models.encoder import require_positive
from edge_rec_export.models.item_features import EventEmbedding, IdEmbedding, LabelBag

MASK_LOGIT = -1e4


@dataclass
class CTRConfig:
    n_labels: int
    max_labels: int = 4
    vector_dim: int = 0  # 0: items carry no semantic vector
    n_items: int = 0  # items with an id embedding (rows 1..n_items); 0: items are read by their content alone
    popularity: bool = False  # the candidate's popularity (cand_pop) is an input of the relevance network
    n_events: int = 0  # history event types read (hist_event, codes 1..n_events); 0: every history item a click
    history_length: int = 50
    label_dim: int = 32
    vector_proj: int = 32
    item_dim: int = 32
    hidden: int = 32
    mlp: int = 64
    dropout: float = 0.1

    def __post_init__(self):
        require_positive(self, ("n_labels", "max_labels", "history_length", "label_dim", "vector_proj", "item_dim",
                                "hidden", "mlp"))
        if min(self.vector_dim, self.n_items, self.n_events) < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"CTRConfig: vector_dim, n_items and n_events must be >= 0 and dropout in [0, 1), got "
                             f"{self.vector_dim}, {self.n_items}, {self.n_events}, {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class ItemEncoder(nn.Module):
    """labels (..., K), index (...), vector (..., V), item (...) id row -> (..., item_dim)."""

    def __init__(self, cfg: CTRConfig):
        super().__init__()
        self.bag = LabelBag(cfg.n_labels, cfg.label_dim)
        self.vector = nn.Linear(cfg.vector_dim, cfg.vector_proj) if cfg.vector_dim else None
        self.ids = IdEmbedding(cfg.n_items, cfg.label_dim) if cfg.n_items else None
        width = cfg.label_dim * (2 if cfg.n_items else 1) + 1 + (cfg.vector_proj if cfg.vector_dim else 0)
        self.out = nn.Sequential(nn.Linear(width, cfg.item_dim), nn.GELU())

    def forward(self, labels, index, vector=None, item=None) -> torch.Tensor:
        parts = [self.bag(labels), index[..., None]]
        if self.vector is not None:
            parts.append(self.vector(vector))
        if self.ids is not None:
            parts.append(self.ids(item))
        return self.out(torch.cat(parts, dim=-1))


class GRUCell(nn.Module):
    """r, z, n gates as in torch.nn.GRUCell; `attention` (B,) scales the update (AUGRU, seed 001's enhancement).
    The input side of every step is projected at once (`inputs`, one MatMul over the sequence) and each `step`
    adds only the hidden side: the unrolled loop does half the products (training ~2x faster, same maths)."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.x = nn.Linear(n_in, 3 * hidden)
        self.h = nn.Linear(hidden, 3 * hidden)

    def inputs(self, x):
        """x (..., H, n_in) -> the input side of the gates (..., H, 3 hidden)."""
        return self.x(x)

    def step(self, gx, h, attention=None):
        """gx: one step of `inputs`, h (B, hidden) -> the next state."""
        xr, xz, xn = gx.chunk(3, dim=-1)
        hr, hz, hn = self.h(h).chunk(3, dim=-1)
        r, update = torch.sigmoid(xr + hr), 1.0 - torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        if attention is not None:
            update = update * attention[:, None]
        return h + update * (n - h)


class CTRModel(nn.Module):
    input_names = ("hist_labels", "hist_index", "hist_vector", "hist_item", "hist_event", "hist_mask", "cand_labels",
                   "cand_index", "cand_vector", "cand_item", "cand_pop")

    def __init__(self, cfg: CTRConfig):
        super().__init__()
        self.cfg = cfg
        self.item = ItemEncoder(cfg)
        self.track = GRUCell(cfg.item_dim, cfg.hidden)
        self.query = nn.Linear(cfg.item_dim, cfg.hidden, bias=False)
        self.enhance = GRUCell(cfg.hidden, cfg.hidden)
        width = 3 * cfg.hidden + cfg.item_dim + (2 if cfg.popularity else 0)
        self.relevance = nn.Sequential(nn.Linear(width, cfg.mlp), nn.GELU(), nn.Dropout(cfg.dropout),
                                       nn.Linear(cfg.mlp, 1))
        # Made last, so the other weights start as in a model without events (same seed): it adds only this.
        self.event = EventEmbedding(cfg.n_events, cfg.item_dim) if cfg.n_events else None

    @property
    def feed_names(self) -> tuple[str, ...]:
        return feed_names(self.input_names, self.cfg)

    def interests(self, hist_labels, hist_index, hist_mask, hist_vector=None, hist_item=None, hist_event=None
                  ) -> torch.Tensor:
        """Interest tracking: hist_* (Bh, H, ...) -> GRU states (Bh, H, g); padded steps keep the state."""
        e_hist = self.item(hist_labels, hist_index, hist_vector, hist_item)  # (Bh, H, d)
        if self.event is not None:
            e_hist = self.event(e_hist, hist_event)
        s = e_hist.new_zeros(e_hist.shape[0], self.cfg.hidden)
        states = []
        # unbind, not [:, t]: each slice's backward would fill a whole (B, H, .) gradient, O(H^2) per sequence
        for gx, m in zip(self.track.inputs(e_hist).unbind(1), hist_mask.unbind(1)):
            s = s + m[:, None] * (self.track.step(gx, s) - s)
            states.append(s)
        return torch.stack(states, dim=1)

    def attend(self, states, mask, q) -> tuple[torch.Tensor, torch.Tensor]:
        """Target attention of query q (N, g) over states (N, H, g) -> weights (N, H) (zero with no history) and
        the attention-pooled interest (N, g)."""
        scores = (states * q[:, None]).sum(dim=-1) / math.sqrt(self.cfg.hidden)
        attn = torch.softmax(scores + (1.0 - mask) * MASK_LOGIT, dim=-1) * mask
        return attn, (attn[..., None] * states).sum(dim=1)

    def features(self, hist_labels, hist_index, hist_mask, cand_labels, cand_index, hist_vector=None,
                 cand_vector=None, hist_item=None, cand_item=None, cand_pop=None, hist_event=None, hist_of=None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The relevance network's input (N, 3g + d [+ 2]), plus the interest states (N, H, g) and mask (N, H).
        `hist_of` (N,): the history row of each candidate, where Bh distinct histories serve N candidates (scoring
        many candidates per visit tracks each history once)."""
        n = cand_labels.shape[0]
        states = self.interests(hist_labels, hist_index, hist_mask, hist_vector, hist_item, hist_event)
        if hist_of is None:
            states, mask = states.expand(n, -1, -1), hist_mask.expand(n, -1)
        else:
            states, mask = states[hist_of], hist_mask[hist_of]
        e_cand = self.item(cand_labels, cand_index, cand_vector, cand_item)  # (N, d)
        q = self.query(e_cand)  # (N, g)
        attn, pooled = self.attend(states, mask, q)
        h = e_cand.new_zeros(n, self.cfg.hidden)
        for gx, m, a in zip(self.enhance.inputs(states).unbind(1), mask.unbind(1), attn.unbind(1)):  # AUGRU
            h = h + m[:, None] * (self.enhance.step(gx, h, a) - h)
        parts = [h, pooled, pooled * q, e_cand]
        if self.cfg.popularity:  # the value and whether the item has any clicks at all
            parts += [cand_pop[:, None], (cand_pop[:, None] > 0).to(cand_pop.dtype)]
        return torch.cat(parts, dim=-1), states, mask

    def logits(self, hist_labels, hist_index, hist_mask, cand_labels, cand_index, hist_vector=None,
               cand_vector=None, hist_item=None, cand_item=None, cand_pop=None, hist_event=None, hist_of=None
               ) -> torch.Tensor:
        """hist_* (Bh, H, ...) with Bh = 1 or N (or any, with `hist_of`), hist_mask (Bh, H) float; cand_* (N, ...)
        -> logits (N,)."""
        z = self.features(hist_labels, hist_index, hist_mask, cand_labels, cand_index, hist_vector, cand_vector,
                          hist_item, cand_item, cand_pop, hist_event, hist_of)[0]
        return self.relevance(z).squeeze(-1)

    def forward(self, hist_labels, hist_index, hist_mask, cand_labels, cand_index, hist_vector=None,
                cand_vector=None, hist_item=None, cand_item=None, cand_pop=None, hist_event=None) -> torch.Tensor:
        return torch.sigmoid(self.logits(hist_labels, hist_index, hist_mask, cand_labels, cand_index, hist_vector,
                                          cand_vector, hist_item, cand_item, cand_pop, hist_event))


def feed_names(names: tuple[str, ...], cfg) -> tuple[str, ...]:
    """The inputs among `names` a ranking model with config `cfg` reads: vectors, ids, popularity and history
    events only where its config has them."""
    off = {"_vector": not getattr(cfg, "vector_dim", 0), "_item": not getattr(cfg, "n_items", 0),
           "_pop": not getattr(cfg, "popularity", False), "_event": not getattr(cfg, "n_events", 0)}
    return tuple(n for n in names if not any(n.endswith(suffix) and skip for suffix, skip in off.items()))
