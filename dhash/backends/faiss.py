"""``dhash.backends.faiss``: see :mod:`dhash.search.backends.faiss`."""
from ..search.backends.faiss import FAISS_KINDS, FaissIndex, export_faiss, load_faiss, save_faiss, side_file

__all__ = ["FAISS_KINDS", "FaissIndex", "export_faiss", "load_faiss", "save_faiss", "side_file"]
