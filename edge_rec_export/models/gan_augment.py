"""Seed 002: generative adversarial augmentation of a sparse domain; the discriminator becomes its ranker.

Generator G: from a visit's history (behaviour in every domain) and noise, a distribution p_G over the sparse
domain's items; the item it samples is a candidate click sample, p_G of it the generator's confidence.
Discriminator D: the CTR model itself; besides its click loss on the real log it learns to tell the domain's real
clicks in the batch from the generated samples (each side averaged, so the term does not simply push the domain
down). Training alternates per batch: with D fixed, G takes a policy-gradient step rewarded by D's logit (samples D
takes for real clicks) plus a distribution term pulling the generated samples toward the domain's real clicks (MMD,
KL or Euclidean, in D's item-vector space or over the domain's items); then with G fixed, D takes its step. The
discriminator is kept as the ranking model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_rec_export.models.encoder import require_positive
from edge_rec_export.models.item_features import LabelBag, masked_mean

DISTANCES = ("mmd", "kl", "euclidean")


@dataclass
class GANConfig:
    n_labels: int
    dim: int = 16
    noise_dim: int = 8
    adversarial_weight: float = 0.2  # D: weight of the real-vs-generated term beside its click loss
    distance: str = "mmd"
    distance_weight: float = 1.0
    lr: float = 1e-3

    def __post_init__(self):
        require_positive(self, ("n_labels", "dim", "noise_dim", "lr"))
        if self.distance not in DISTANCES or self.adversarial_weight < 0 or self.distance_weight < 0:
            raise ValueError(f"GANConfig: distance must be one of {DISTANCES} and the weights >= 0, got "
                             f"{self.distance}, {self.adversarial_weight}, {self.distance_weight}")

    def to_dict(self) -> dict:
        return asdict(self)


class Generator(nn.Module):
    """history labels (B, H, K), mask (B, H) -> logits (B, M) over the domain's M items (labels (M, K))."""

    def __init__(self, cfg: GANConfig, domain_labels: torch.Tensor):
        super().__init__()
        self.cfg = cfg
        self.bag = LabelBag(cfg.n_labels, cfg.dim)
        self.user = nn.Sequential(nn.Linear(cfg.dim + cfg.noise_dim, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim))
        self.register_buffer("domain_labels", domain_labels, persistent=False)

    def forward(self, hist_labels, hist_mask) -> torch.Tensor:
        interest = masked_mean(self.bag(hist_labels), hist_mask)
        noise = torch.randn(interest.shape[0], self.cfg.noise_dim, device=interest.device)
        u = self.user(torch.cat([interest, noise], dim=-1))
        return u @ self.bag(self.domain_labels).T


def distance(kind: str, real: torch.Tensor, fake: torch.Tensor, real_p: torch.Tensor, fake_p: torch.Tensor):
    """Distribution term between real and generated samples: vectors (R, d) / (B, d) for MMD (Gaussian kernel,
    median bandwidth) and Euclidean (between the means); item distributions (M,) / (M,) for KL(real || generated)."""
    if kind == "kl":
        return (real_p * (real_p.clamp_min(1e-8).log() - fake_p.clamp_min(1e-8).log())).sum()
    if kind == "euclidean":
        return (real.mean(0) - fake.mean(0)).pow(2).sum()
    both = torch.cat([real, fake])
    d2 = torch.cdist(both, both).pow(2)
    k = torch.exp(-d2 / d2.detach().median().clamp_min(1e-6))
    r = len(real)
    return k[:r, :r].mean() + k[r:, r:].mean() - 2 * k[:r, r:].mean()


class GANObjective:
    """`fit` objective: one G step (D fixed), then D's loss (G fixed) on a batch of training rows."""

    def __init__(self, cfg: GANConfig, tensors, train, domain: np.ndarray, base_objective, seed: int = 0):
        self.cfg, self.tensors, self.train, self.base = cfg, tensors, train, base_objective
        self.rows = torch.from_numpy(np.flatnonzero(domain)).to(tensors.device)  # the domain's item rows
        self.is_domain = torch.from_numpy(domain).to(tensors.device)
        torch.manual_seed(seed)
        self.generator = Generator(cfg, tensors.labels[self.rows]).to(tensors.device)
        self.opt = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr)
        self.target = torch.from_numpy(train.target).to(tensors.device)

    def __call__(self, model, idx: np.ndarray) -> torch.Tensor:
        clicks = idx[self.train.y[idx] > 0.5]  # generate one domain click sample per real click visit
        hist, events = self.train.hist[clicks], self.train.hist_event[clicks]
        clicked = self.target[torch.from_numpy(clicks).to(self.tensors.device)]
        fake = self._generator_step(model, hist, events, clicked)
        loss = self.base(model, idx)
        real = self.is_domain[clicked].cpu().numpy()
        if not real.any():  # the adversarial term needs both sides, or it only pushes the domain down
            return loss
        d_real = self._d_logits(model, hist[real], events[real], clicked[torch.from_numpy(real)])
        d_fake = self._d_logits(model, hist, events, fake)
        return loss + self.cfg.adversarial_weight * 0.5 * (
            F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))

    def _d_logits(self, model, hist: np.ndarray, events: np.ndarray, items: torch.Tensor) -> torch.Tensor:
        return model.logits(**self.tensors.feeds(hist, items.cpu().numpy(), model.feed_names, hist_event=events))

    def _generator_step(self, model, hist: np.ndarray, events: np.ndarray, clicked: torch.Tensor) -> torch.Tensor:
        """One policy-gradient step of G against the fixed D; returns the sampled items (rows of the table)."""
        h = torch.from_numpy(hist).to(self.tensors.device)
        logp = F.log_softmax(self.generator(self.tensors.labels[h], (h > 0).float()), dim=-1)  # (B, M)
        pick = torch.multinomial(logp.exp(), 1).squeeze(-1)
        items = self.rows[pick]
        with torch.no_grad():
            was_training = model.training
            model.eval()
            reward = self._d_logits(model, hist, events, items)
            model.train(was_training)
            vectors = model.item(self.tensors.labels[self.rows], self.tensors.index[self.rows],
                                 self.tensors.vectors[self.rows])  # (M, d), D's item space
        loss = -(logp.gather(1, pick[:, None]).squeeze(1) * (reward - reward.mean())).mean()
        real = clicked[self.is_domain[clicked]]
        if len(real) and self.cfg.distance_weight:
            real_pos = torch.searchsorted(self.rows, real)
            real_p = torch.bincount(real_pos, minlength=len(self.rows)).float() / len(real)
            p = logp.exp()
            loss = loss + self.cfg.distance_weight * distance(self.cfg.distance, vectors[real_pos], p @ vectors,
                                                              real_p, p.mean(0))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return items.detach()
