"""edge-rec: on-device content classification and recommendation (onnxruntime + tokenizers + numpy)."""
__version__ = "0.1.0"

from edge_rec.bundle import Bundle, BundleError, default_bundle_path, load_bundle  # noqa: E402
from edge_rec.classifier import Classification, ContentClassifier  # noqa: E402
from edge_rec.items import Item, User  # noqa: E402
from edge_rec.recommender import EdgeRecommender, Recommendation  # noqa: E402
from edge_rec.semantic import VectorStore  # noqa: E402
from edge_rec.store import Store, StoreError  # noqa: E402

__all__ = ["Bundle", "BundleError", "Classification", "ContentClassifier", "EdgeRecommender", "Item",
           "Recommendation", "Store", "StoreError", "User", "VectorStore", "default_bundle_path", "load_bundle", "__version__"]
