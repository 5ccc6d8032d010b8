"""Data: load image collections and feature files, split them by protocol, turn items into tensors.

``load_source(spec)`` accepts ``fashion-mnist``, ``mnist``, ``cifar10``, a folder of images
(sub-folder = class), a ``.txt`` list file (``path l1 … lC``) or an ``.h5`` feature file;
``make_split`` draws train / query / database indices by protocol; ``ImageDataset`` with
``build_transform(spec, train)`` feeds a ``DataLoader``; ``images_by_id`` finds items' images by
the ids code files carry. ``feature_cache`` keeps backbone features of images in HDF5 (frozen
backbones); ``preload`` decodes and resizes image files once into memory (fine-tuning).
"""
from .dataset import ImageDataset
from .load import BUILTIN, images_by_id, load_source
from .source import Source
from .splits import PROTOCOLS, Split, make_split
from .transforms import build_transform

__all__ = ["BUILTIN", "PROTOCOLS", "ImageDataset", "Source", "Split", "build_transform", "images_by_id", "load_source", "make_split"]
