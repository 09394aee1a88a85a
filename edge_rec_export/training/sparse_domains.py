"""Sparse domains in a click log: the setting of seeds 002 and 004, made from a real log.

A domain is a set of items (here: the movies of some genres). `sparsify` keeps only a share of the training
behaviour on the chosen domains, as if the app had few visits there: a training visit whose real item is in the
domain is dropped with probability 1 - keep, a dropped click also leaves every later history of that user, and a
sampled (never-rated) negative from the domain is dropped at the same rate. Validation and test visits stay (their
histories lose the dropped clicks), so the sparse domains are judged on real held-out clicks.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge_rec_export.data.interactions import ClickLog, ItemTable, Samples
from edge_rec_export.training.metrics import auc, gauc


def domain_items(items: ItemTable, label_names: list[str]) -> np.ndarray:
    """Bool (n_items,): the items carrying any of `label_names`."""
    unknown = sorted(set(label_names) - set(items.label_names))
    if unknown:
        raise ValueError(f"unknown labels {unknown}; the log has e.g. {items.label_names[:5]}")
    ids = [items.label_names.index(n) + 1 for n in label_names]
    return np.isin(items.labels, ids).any(axis=1)


def sparsify(log: ClickLog, domain: np.ndarray, keep: float = 0.1, seed: int = 0) -> ClickLog:
    """`log` with only about `keep` of the training behaviour on the `domain` items (see the module docstring)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    rng = np.random.default_rng(seed)
    dropped: dict[int, set[int]] = {}  # user -> clicked items removed from the log
    train = []
    for imp in log.train:  # visits are in time order per user, so a dropped click is known before later visits
        real = len(imp.shown) if imp.real is None else imp.real
        if domain[imp.shown[:real]].any() and rng.random() >= keep:
            dropped.setdefault(imp.user, set()).update(imp.shown[:real][imp.clicks[:real] > 0].tolist())
            continue
        sampled = np.arange(len(imp.shown)) >= real
        drop = sampled & domain[imp.shown] & (rng.random(len(imp.shown)) >= keep)
        train.append(replace(imp, history=_without(imp.history, dropped.get(imp.user)), shown=imp.shown[~drop],
                             clicks=imp.clicks[~drop]))
    held = {name: [replace(imp, history=_without(imp.history, dropped.get(imp.user))) for imp in log.split(name)]
            for name in ("val", "test")}
    n_dropped = sum(map(len, dropped.values()))
    return replace(log, train=train, val=held["val"], test=held["test"],
                   notes=f"{log.notes}; sparse domain ({int(domain.sum())} items): kept {keep:.0%} of its training "
                         f"visits ({n_dropped} clicks dropped)")


def _without(history: np.ndarray, items: set[int] | None) -> np.ndarray:
    return history if not items else history[~np.isin(history, list(items))]


def channels_of(items: ItemTable, prefix: str) -> tuple[list[int], np.ndarray]:
    """The label ids whose names start with `prefix` (the channels, e.g. "genre:") and bool (n_items, C): the
    channels each item belongs to."""
    ids = [i for i, n in enumerate(items.label_names, start=1) if n.startswith(prefix)]
    if not ids:
        raise ValueError(f"no label starts with {prefix!r}; the log has e.g. {items.label_names[:5]}")
    return ids, np.isin(items.labels[:, :, None], ids).any(axis=1)


def channel_clicks(s: Samples, channels: np.ndarray) -> np.ndarray:
    """Seed 004's second target per row: 1.0 when the visit's click is in a channel (genre) of the row's item.

    channels: bool (n_items, C), the channels each item belongs to."""
    clicked = np.full(int(s.group.max()) + 1 if len(s) else 0, -1)
    clicked[s.group[s.y > 0.5]] = s.target[s.y > 0.5]
    visit = clicked[s.group]
    out = np.zeros(len(s), dtype=np.float32)
    has = visit >= 0
    out[has] = (channels[s.target[has]] & channels[visit[has]]).any(axis=1)
    return out


def domain_report(pred: np.ndarray, s: Samples, domain: np.ndarray) -> dict:
    """Figures on the sparse domain: AUC over the rows whose item is in it, and the gAUC of the visits whose
    click is in it (against all their candidates, so under-scoring the domain as a whole shows)."""
    rows = domain[s.target]
    visits = np.unique(s.group[rows & (s.y > 0.5)])
    in_visit = np.isin(s.group, visits)
    return {"domain_rows": int(rows.sum()), "domain_clicks": int(len(visits)),
            "domain_auc": round(auc(pred[rows], s.y[rows]), 4),
            "domain_visit_gauc": round(gauc(pred[in_visit], s.y[in_visit], s.group[in_visit]), 4),
            "auc": round(auc(pred, s.y), 4)}
