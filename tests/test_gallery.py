"""The retrieval grid PNG: size and frame colours."""
import numpy as np
from PIL import Image

from dhash.evaluate.gallery import GREEN, QUERY, RED, retrieval_grid


def test_grid_frames_relevant_green_and_irrelevant_red(tmp_path):
    rng = np.random.default_rng(0)
    img = lambda: rng.integers(0, 255, (28, 28), dtype=np.uint8)  # noqa: E731
    path = retrieval_grid([img(), img()], [[img(), img(), img()], [img()]], [[True, False, True], [False]],
                          tmp_path / "grid.png", size=40)
    grid = np.asarray(Image.open(path).convert("RGB"))
    frame, gap = 2, 5
    cell = 40 + 2 * frame
    assert grid.shape == (2 * (cell + gap) + gap, 4 * (cell + gap) + gap, 3)
    corner = lambda row, col: tuple(grid[gap + row * (cell + gap), gap + col * (cell + gap)])  # noqa: E731
    assert corner(0, 0) == QUERY and corner(0, 1) == GREEN and corner(0, 2) == RED and corner(0, 3) == GREEN
    assert corner(1, 1) == RED and corner(1, 2) == (255, 255, 255)
