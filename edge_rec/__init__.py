"""edge-rec: on-device content classification and recommendation (onnxruntime + tokenizers + numpy).

The public names load on first use (PEP 562), so `import edge_rec` and the `edge-rec` command start without pulling
in onnxruntime until they need it (and Ctrl-C while it loads is an ordinary interrupt, edge_rec/entry.py).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {"Bundle": "bundle", "BundleError": "bundle", "default_bundle_path": "bundle", "load_bundle": "bundle",
            "Classification": "classifier", "ContentClassifier": "classifier", "Item": "items", "User": "items",
            "EdgeRecommender": "recommender", "Recommendation": "recommender", "VectorStore": "semantic",
            "Store": "store", "StoreError": "store"}
__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ imports on first use
    from edge_rec.bundle import Bundle, BundleError, default_bundle_path, load_bundle  # noqa: F401
    from edge_rec.classifier import Classification, ContentClassifier  # noqa: F401
    from edge_rec.items import Item, User  # noqa: F401
    from edge_rec.recommender import EdgeRecommender, Recommendation  # noqa: F401
    from edge_rec.semantic import VectorStore  # noqa: F401
    from edge_rec.store import Store, StoreError  # noqa: F401


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edge_rec' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"edge_rec.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
