"""A post-LayerNorm BERT encoder in plain torch (no `transformers`), mean-pooled.

Matches the layout of multilingual-e5-small (see TEACHER_FORMAT.md): absolute positions from 0, one token type,
GELU feed-forward, LayerNorm after each residual.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


def require_positive(cfg, names) -> None:
    """ValueError naming the first of the config's fields `names` that is not > 0."""
    for name in names:
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{type(cfg).__name__}.{name} must be > 0, got {getattr(cfg, name)}")


@dataclass
class EncoderConfig:
    vocab_size: int = 250037
    hidden: int = 384
    layers: int = 12
    heads: int = 12
    ff: int = 1536
    max_positions: int = 512
    ln_eps: float = 1e-12
    pad_id: int = 1

    def __post_init__(self):
        require_positive(self, ("vocab_size", "hidden", "layers", "heads", "ff", "max_positions"))
        if self.hidden % self.heads:
            raise ValueError(f"EncoderConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"EncoderConfig.pad_id {self.pad_id} is outside the vocabulary [0, {self.vocab_size})")

    def to_dict(self) -> dict:
        return asdict(self)


class SelfAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.heads = cfg.heads
        self.q = nn.Linear(cfg.hidden, cfg.hidden)
        self.k = nn.Linear(cfg.hidden, cfg.hidden)
        self.v = nn.Linear(cfg.hidden, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape  # (B, T, H)
        d = h // self.heads

        def split(y):  # (B, T, H) -> (B, heads, T, d)
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias  # (B, heads, T, T); bias (B, 1, 1, T)
        ctx = scores.softmax(dim=-1) @ v  # (B, heads, T, d)
        return self.out(ctx.transpose(1, 2).reshape(b, t, h))


class Layer(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.attn = SelfAttention(cfg)
        self.attn_ln = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps)
        self.ff_in = nn.Linear(cfg.hidden, cfg.ff)
        self.ff_out = nn.Linear(cfg.ff, cfg.hidden)
        self.out_ln = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attn_ln(x + self.attn(x, bias))
        return self.out_ln(x + self.ff_out(F.gelu(self.ff_in(x))))


class Encoder(nn.Module):
    """input_ids, attention_mask (B, T) -> hidden states per layer and the mean-pooled output (B, H)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.pos = nn.Embedding(cfg.max_positions, cfg.hidden)
        # e5 has a single token type: its row is added to every position, so it is kept as one vector.
        self.token_type = nn.Parameter(torch.zeros(cfg.hidden))
        self.emb_ln = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        return self.encode(self.embed(input_ids), attention_mask)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.emb_ln(self.word(input_ids) + self.pos(positions)[None] + self.token_type)  # (B, T, H)

    def encode(self, x: torch.Tensor, attention_mask: torch.Tensor, first: int = 0, stop: int | None = None
               ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run layers `first`..`stop`-1 (default: to the top) on x, the hidden state entering layer `first` (B, T, H).

        Returns [x, after layer first, ...] and the mean-pooled last state (B, H). Training with frozen lower
        layers caches their output once and starts here.
        """
        mask = attention_mask.to(x.dtype)  # (B, T)
        bias = ((1.0 - mask) * -10000.0)[:, None, None, :]  # (B, 1, 1, T)
        hidden = [x]
        for layer in self.layers[first:stop]:
            x = layer(x, bias)
            hidden.append(x)
        return hidden, mean_pool(x, mask)


def mean_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: x (B, T, H), mask (B, T) float -> (B, H)."""
    return (x * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
