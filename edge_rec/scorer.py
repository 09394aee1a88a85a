"""A bundle's recall or ranking model in onnxruntime: one user's history against N candidates -> scores (N,)."""
from __future__ import annotations

import numpy as np

from edge_rec.bundle import Bundle, BundleError
from edge_rec.sessions import bundle_session

HISTORY = {"hist_labels": "labels", "hist_index": "index", "hist_vector": "vector"}
CANDIDATE = {"cand_labels": "labels", "cand_index": "index", "cand_vector": "vector"}
REQUIRED = {"hist_labels", "hist_mask", "cand_labels"}


class ModelScorer:
    """Feeds are built from the session's own input names; the history length H is read from its input shape."""

    def __init__(self, bundle: Bundle, role: str, threads: int):
        self.session, self.path = bundle_session(bundle, role, threads)
        inputs = {i.name: i for i in self.session.get_inputs()}
        known = {*HISTORY, *CANDIDATE, "hist_mask"}
        if not REQUIRED <= set(inputs) <= known:
            raise BundleError(f"{self.path}: model inputs are {sorted(inputs)}; a {role} model takes "
                              f"{sorted(REQUIRED)} and optionally {sorted(known - REQUIRED)}")
        if [o.name for o in self.session.get_outputs()] != ["score"]:
            raise BundleError(f"{self.path}: a {role} model has one output 'score', this one has "
                              f"{[o.name for o in self.session.get_outputs()]}")
        shape = inputs["hist_labels"].shape
        if not (len(shape) == 3 and all(isinstance(d, int) for d in shape[1:])):
            raise BundleError(f"{self.path}: input 'hist_labels' must have a fixed shape (1, H, K), got {shape}")
        self.history_length, self.max_labels = shape[1], shape[2]
        self.vector_dim = inputs["hist_vector"].shape[2] if "hist_vector" in inputs else 0
        self.inputs = list(inputs)

    def __call__(self, history: dict[str, np.ndarray], candidates: dict[str, np.ndarray]) -> np.ndarray:
        """history/candidates: LabelVocab.features of the user's items (oldest first) and of the candidates."""
        h, n = self.history_length, len(candidates["index"])
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        take = min(len(history["index"]), h)
        feeds = {"hist_mask": np.zeros((1, h), dtype=np.float32)}
        feeds["hist_mask"][0, h - take:] = 1.0
        for name, key in HISTORY.items():
            if name in self.inputs:
                src = history[key]
                arr = np.zeros((1, h, *src.shape[1:]), dtype=src.dtype)
                if take:
                    arr[0, h - take:] = src[-take:]
                feeds[name] = arr
        for name, key in CANDIDATE.items():
            if name in self.inputs:
                feeds[name] = candidates[key]
        (score,) = self.session.run(["score"], {k: feeds[k] for k in self.inputs})  # (N,)
        if not np.isfinite(score).all():
            raise RuntimeError(f"{self.path}: the model produced non-finite scores")
        return score
