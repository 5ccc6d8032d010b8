"""``ImageDataset``: the items of a ``Source`` picked by an index array, as tensors for a ``DataLoader``."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import DHashError
from .imagefiles import open_image
from .source import Source
from .transforms import item_key, to_float_tensor


class ImageDataset(Dataset):
    """Item ``k`` is ``(x, y, i)`` for source item ``i = indices[k]``.

    ``x``: the transformed image (float tensor C×S×S), or the feature vector for feature sources
    (``transform`` is not applied); without a transform, the image as floats in [0, 1], C×H×W.
    ``y``: float tensor of the C labels (all zero for an unlabelled source). ``i``: int.
    An image file that fails to decode raises ``DHashError`` naming it. With ``augment_seed`` set
    (training sets it every epoch), a training transform's random draw for item ``i`` is keyed by
    ``(augment_seed, i)`` (``transforms.item_key``).
    """

    augment_seed: int | None = None

    def __init__(self, source: Source, indices: np.ndarray | None = None, transform: Callable | None = None):
        self.source = source
        self.indices = np.arange(len(source)) if indices is None else np.asarray(indices, dtype=np.int64)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= len(source)):
            raise DHashError(f"{source.name}: item indices outside 0..{len(source) - 1}")
        self.transform = transform or to_float_tensor
        self._no_labels = torch.zeros(source.num_classes)

    def _transform(self, image, i: int) -> torch.Tensor:
        if self.augment_seed is None:
            return self.transform(image)
        return self.transform(image, key=item_key(self.augment_seed, i))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        i = int(self.indices[k])
        source = self.source
        y = self._no_labels if source.labels is None else torch.from_numpy(source.labels[i]).float()
        if source.features is not None:
            return torch.from_numpy(source.features[i]), y, i
        if source.images is not None:
            return self._transform(source.images[i], i), y, i
        path = source.paths[i]
        with open_image(path) as image:
            try:
                x = self._transform(image, i)
            except (OSError, SyntaxError) as err:  # what Pillow raises for a file broken past its header
                raise DHashError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from None
        return x, y, i
