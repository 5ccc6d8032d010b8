"""``Source``: a labelled (or unlabelled) collection of images or feature vectors."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)  # numpy fields: == would be ambiguous, so equality is identity
class Source:
    """One data set, whatever it was loaded from.

    Exactly one of ``images`` (in-memory uint8 N×H×W or N×H×W×3), ``paths`` (image files) and
    ``features`` (N×D float32) is set. ``labels`` is N×C uint8 multi-hot (None when unlabelled);
    ``subset`` marks the data set's own split (0 = train, 1 = test; None when it has none).
    ``skipped`` lists the image files left out (unreadable, missing, or without a class) as
    ``"PATH (reason)"``, for reports. Fields not given are unset (None or empty).
    """

    name: str
    images: np.ndarray | None = None
    paths: list[str] | None = None
    features: np.ndarray | None = None
    labels: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    subset: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def kind(self) -> str:
        """``"images"`` (in memory), ``"paths"`` (image files) or ``"features"``."""
        if self.images is not None:
            return "images"
        if self.paths is not None:
            return "paths"
        return "features"

    @property
    def multi_label(self) -> bool:
        """True when some item carries more than one label."""
        return self.labels is not None and bool((self.labels.sum(axis=1, dtype=np.int64) > 1).any())

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def fingerprint(self) -> str:
        """SHA-256 of what identifies the data set: size, classes, labels and ids (relative to its name)."""
        digest = hashlib.sha256(f"{len(self)}\n{self.kind}\n".encode())
        digest.update("\n".join(self.classes).encode())
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels, dtype=np.uint8).tobytes())
        prefix = self.name.rstrip("/\\")
        for item in self.ids:
            digest.update((item[len(prefix):] if item.startswith(prefix) else item).encode() + b"\n")
        return digest.hexdigest()


def one_hot(indices: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices (N) → uint8 N×C one-hot rows."""
    out = np.zeros((len(indices), num_classes), dtype=np.uint8)
    out[np.arange(len(indices)), indices] = 1
    return out
