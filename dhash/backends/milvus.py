"""``dhash.backends.milvus``: see :mod:`dhash.search.backends.milvus`."""
from ..search.backends.milvus import MAX_RESULTS, MilvusIndex, connect, export_milvus

__all__ = ["MAX_RESULTS", "MilvusIndex", "connect", "export_milvus"]
