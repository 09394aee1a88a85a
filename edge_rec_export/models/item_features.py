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
