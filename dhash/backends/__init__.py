"""``dhash.backends``: the engine adapters under their public name; they live in
``dhash.search.backends`` (``faiss`` and ``milvus`` submodules, imported on use)."""
from ..search.backends import canonical_range, canonical_topk, open_index

__all__ = ["canonical_range", "canonical_topk", "open_index"]
