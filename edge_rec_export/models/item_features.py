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
    """History event codes (...), 1..n_events (0 = padding) -> (..., dim), added to each history item's vector.
    Zeros at the start: a model begins as one that reads every event as a click and moves away where the log
    pays for it."""

    def __init__(self, n_events: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(n_events + 1, dim, padding_idx=0)
        nn.init.zeros_(self.embed.weight)

    def forward(self, event: torch.Tensor) -> torch.Tensor:
        return self.embed(event)
