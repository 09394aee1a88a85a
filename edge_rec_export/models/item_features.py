"""Item features shared by the ranking models: a bag of label embeddings (order-feature extraction, seed 001)."""
from __future__ import annotations

import torch
from torch import nn


class LabelBag(nn.Module):
    """Label ids (..., K), 0 = none -> the mean of their embeddings (..., dim); zeros for an item with no labels."""

    def __init__(self, n_labels: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(n_labels + 1, dim, padding_idx=0)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        present = (labels > 0).to(self.embed.weight.dtype)  # (..., K)
        summed = self.embed(labels).sum(dim=-2)  # (..., dim); the padding row is zero
        return summed / present.sum(dim=-1, keepdim=True).clamp(min=1.0)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, T, D), mask (B, T) float -> (B, D), zeros where the mask is empty."""
    return (x * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)


class IdEmbedding(nn.Module):
    """Item id rows (...), 0 = an id without an embedding (never in the training log) -> (..., dim); zeros for 0."""

    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.embed.weight, std=0.05)
        with torch.no_grad():
            self.embed.weight[0].zero_()

    def forward(self, item: torch.Tensor) -> torch.Tensor:
        return self.embed(item)


class EventEmbedding(nn.Module):
    """History event codes (...), 1..n_events (0 = padding), modulate each history item's vector x (..., dim):
    x * scale[event] + shift[event]. A scale can shrink an item's weight or turn it around (viewed long but not
    liked), a shift mark the event itself. At the start scale = 1 and shifts are small (std 0.05, as the id table's:
    exactly 0 left some toy logs' signal unlearned): about a model that reads every event as a click, moving away
    where the log pays for it."""

    def __init__(self, n_events: int, dim: int):
        super().__init__()
        self.scale = nn.Embedding(n_events + 1, dim)
        self.shift = nn.Embedding(n_events + 1, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.normal_(self.shift.weight, std=0.05)

    def forward(self, x: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
        return x * self.scale(event) + self.shift(event)
