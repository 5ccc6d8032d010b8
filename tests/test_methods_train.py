"""Every registered method, trained as a user would (its own default settings, default backbone) for one
epoch on 3,000 Fashion-MNIST images, retrieves held-out queries far better than random codes."""
from __future__ import annotations

import numpy as np
import pytest

from dhash.learn.config import resolve
from dhash.learn.data import load_source
from dhash.learn.encode import load_model
from dhash.learn.methods import method_names
from dhash.evaluate.metrics import mean_average_precision
from dhash.learn.train import train

BITS = 32
MARGIN = 0.08  # over random codes' mAP (about 0.10 on ten balanced classes)
PARAMS = {"sdsh": {"rotation_steps": 100}}  # a shorter rotation search (800 steps take most of a minute)


@pytest.fixture(scope="module")
def fashion():
    return load_source("fashion-mnist")


@pytest.mark.parametrize("name", method_names())
def test_method_beats_random_codes(name, fashion, tmp_path):
    # per class: 300 training images (the database) and 30 held-out queries; 1 thread (see test_train)
    config = resolve({"data": "fashion-mnist", "method": name, "bits": BITS, "epochs": 1, "protocol": "per-class",
                      "queries_per_class": 30, "train_per_class": 300, "threads": 1, "params": PARAMS.get(name, {})})
    encoder = load_model(train(config, tmp_path / name), device="cpu")
    split = encoder.record["split"]
    query = encoder.encode_source(fashion, split["query"].numpy(), threads=1)
    database = encoder.encode_source(fashion, split["train"].numpy(), threads=1)
    learned = mean_average_precision(query.codes, database.codes, query.labels, database.labels, BITS)
    rng = np.random.default_rng(0)
    random = mean_average_precision(rng.integers(0, 256, query.codes.shape, dtype=np.uint8),
                                    rng.integers(0, 256, database.codes.shape, dtype=np.uint8),
                                    query.labels, database.labels, BITS)
    print(f"{name}: mAP {learned:.3f} (random codes {random:.3f})")
    assert learned > random + MARGIN, (name, learned, random)
