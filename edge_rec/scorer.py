"""A bundle's recall or ranking model in onnxruntime: one user's history against N candidates -> scores (N,); a
two-tower recall model may ship as its two sides (RecallSides)."""
from __future__ import annotations

import numpy as np

from edge_rec.bundle import Bundle, BundleError
from edge_rec.semantic import max_dot
from edge_rec.sessions import bundle_session, checked_output

HISTORY = {"hist_labels": "labels", "hist_index": "index", "hist_vector": "vector", "hist_item": "item",
           "hist_event": "event"}
CANDIDATE = {"cand_labels": "labels", "cand_index": "index", "cand_vector": "vector", "cand_item": "item",
             "cand_pop": "pop"}
REQUIRED = {"hist_labels", "hist_mask", "cand_labels"}
RECALL_USER = ("hist_labels", "hist_mask"), ("hist_item", "hist_event")  # a recall side's required and optional inputs
RECALL_ITEMS = ("cand_labels", "cand_index"), ("cand_item",)


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
        self.reads_items = "cand_item" in inputs
        self.reads_events = "hist_event" in inputs

    def __call__(self, history: dict[str, np.ndarray], candidates: dict[str, np.ndarray]) -> np.ndarray:
        """history/candidates: LabelVocab.features of the user's items (oldest first) and of the candidates."""
        if len(candidates["index"]) == 0:
            return np.zeros(0, dtype=np.float32)
        feeds = history_feeds(history, self.history_length, self.inputs)
        feeds.update({name: candidates[key] for name, key in CANDIDATE.items() if name in self.inputs})
        (score,) = self.session.run(["score"], feeds)  # (N,)
        return checked_output(score, self.path, "score", (len(candidates["index"]),), probabilities=True)


class RecallSides:
    """A two-tower recall model shipped as its two sides: recall_user (the history) -> user (1, D), recall_items
    (candidates) -> items (N, D); score = sigmoid(items @ user.T). The item side depends on the item alone, so a
    catalogue computes it once (`items`, kept as the features' "recall_items") and each call is one product."""

    def __init__(self, bundle: Bundle, threads: int):
        self.threads = threads
        self.user, self.user_path = bundle_session(bundle, "recall_user", threads)
        self.item_side, self.items_path = bundle_session(bundle, "recall_items", threads)
        for session, path, (required, optional), output in ((self.user, self.user_path, RECALL_USER, "user"),
                                                            (self.item_side, self.items_path, RECALL_ITEMS, "items")):
            found = ({i.name for i in session.get_inputs()}, [o.name for o in session.get_outputs()])
            if not set(required) <= found[0] <= {*required, *optional} or found[1] != [output]:
                raise BundleError(f"{path}: a recall side takes {list(required)} (and optionally {list(optional)}) "
                                  f"and gives {output!r}; this one takes {sorted(found[0])} and gives {found[1]}")
        self.user_inputs = [i.name for i in self.user.get_inputs()]
        self.item_inputs = [i.name for i in self.item_side.get_inputs()]
        self.reads_items = "cand_item" in self.item_inputs
        self.reads_events = "hist_event" in self.user_inputs
        self.path = self.items_path  # where the label and item tables are
        shape = self.user.get_inputs()[0].shape
        if not (len(shape) == 3 and all(isinstance(d, int) for d in shape[1:])):
            raise BundleError(f"{self.user_path}: input 'hist_labels' must have a fixed shape (1, H, K), got {shape}")
        self.history_length, self.max_labels = shape[1], shape[2]

    def items(self, candidates: dict[str, np.ndarray]) -> np.ndarray:
        """(N, D) item side of the candidates' LabelVocab.features."""
        if len(candidates["index"]) == 0:
            return np.zeros((0, self.item_side.get_outputs()[0].shape[-1]), dtype=np.float32)
        (items,) = self.item_side.run(["items"], {name: candidates[CANDIDATE[name]] for name in self.item_inputs})
        return checked_output(items, self.items_path, "items", (len(candidates["index"]), None))

    def __call__(self, history: dict[str, np.ndarray], candidates: dict[str, np.ndarray]) -> np.ndarray:
        """As ModelScorer's; candidates that carry "recall_items" are not passed through the item side again."""
        items = candidates.get("recall_items")
        items = self.items(candidates) if items is None else items
        (user,) = self.user.run(["user"], history_feeds(history, self.history_length, self.user_inputs))
        return side_scores(items, checked_output(user, self.user_path, "user", (1, items.shape[1])), self.threads)


def side_scores(items: np.ndarray, user: np.ndarray, threads: int = 1) -> np.ndarray:
    """A two-sided recall model's scores: items (N, D), user (1, D) -> sigmoid(items @ user.T) (N,), the product in
    onnxruntime (semantic.max_dot) with `threads` threads."""
    return (1.0 / (1.0 + np.exp(-max_dot(items, user.T, threads)))).astype(np.float32)


def history_feeds(history: dict[str, np.ndarray], h: int, inputs: list[str]) -> dict[str, np.ndarray]:
    """The history inputs among `inputs`: the user's last h items, right-aligned (oldest first), and their mask."""
    take = min(len(history["index"]), h)
    feeds = {"hist_mask": np.zeros((1, h), dtype=np.float32)}
    feeds["hist_mask"][0, h - take:] = 1.0
    for name, key in HISTORY.items():
        if name in inputs:
            src = history[key]
            arr = np.zeros((1, h, *src.shape[1:]), dtype=src.dtype)
            if take:
                arr[0, h - take:] = src[-take:]
            feeds[name] = arr
    return {k: v for k, v in feeds.items() if k in inputs}


def table_probe(score, vocab_size: int, what: str, path) -> None:
    """A model's embedding table for ids 1..`vocab_size` (`score(id)` runs the model with that id) must hold exactly
    that many rows: the last id answers, the next is out of range (a table of another size ranks silently
    wrong or fails at the first call)."""
    try:
        score(vocab_size)
    except Exception as e:  # onnxruntime's own exception types
        raise BundleError(f"{path}: the manifest lists {vocab_size} {what} but the model's table has fewer rows "
                          f"({' '.join(str(e).split())[:160]})") from None
    try:
        score(vocab_size + 1)
    except Exception:
        return
    raise BundleError(f"{path}: the manifest lists {vocab_size} {what} but the model's table has more rows")
