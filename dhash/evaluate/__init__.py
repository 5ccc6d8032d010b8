"""The evaluation half: retrieval metrics, their numba kernels, curves and retrieval grids.

``metrics`` computes mAP@k, precision/recall at Hamming radius, NDCG and the curves of the field
(formulas in ``docs/metrics.md``) over code files; ``ap_kernels`` holds its numba loops;
``curves`` writes the curves as PNG + CSV; ``gallery`` draws query/result image grids. It may
import ``dhash.search`` (distances come from the search core) but never torch or ``dhash.learn``.
"""
from .metrics import evaluate_codes, mean_average_precision, pack_labels

__all__ = ["evaluate_codes", "mean_average_precision", "pack_labels"]
