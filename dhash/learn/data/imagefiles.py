"""Image files on disk: which suffixes count, checking they can be read, reporting the ones that cannot."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import track

from ...errors import DHashError

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
LISTED = 10  # unreadable files named in a report; the rest are counted


def check_images(
    paths: list[str], origin: str, strict: bool = False, progress: bool = False
) -> tuple[list[bool], list[str]]:
    """Return which paths open (a flag each) and the failures as ``"PATH (reason)"``; raise if ``strict``.

    Each file is opened and ``verify()``-ed (header and, for PNG, checksums) without decoding
    the pixels; an image broken past its header is caught when it is read for training. Failures
    are reported as one warning naming ``origin`` (the folder or list file).
    """
    ok, bad = [], []
    for path in track(paths, description=f"Checking {origin}", disable=not progress):
        problem = _verify(path)
        ok.append(problem is None)
        if problem:
            bad.append(f"{path} ({problem})")
    if bad:
        shown = "; ".join(bad[:LISTED]) + (f"; and {len(bad) - LISTED} more" if len(bad) > LISTED else "")
        message = f"{origin}: {len(bad)} of {len(paths)} images unreadable: {shown}"
        if strict:
            raise DHashError(message)
        warnings.warn(message + " (skipped)", stacklevel=3)
    return ok, bad


def _verify(path: str) -> str | None:
    """None if the file opens and verifies, else why not."""
    try:
        with Image.open(path) as image:
            image.verify()
    except FileNotFoundError:
        return "missing"
    except Exception as err:  # Pillow raises many types for a broken file
        return _reason(err)
    return None


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {err}".replace("\n", " ")


def typical_side(paths: list[str], sample: int = 64) -> int | None:
    """The median shorter side in pixels of up to ``sample`` evenly spaced files of ``paths`` (headers only;
    None when none opens)."""
    sides = []
    for k in sorted({round(j * (len(paths) - 1) / max(1, sample - 1)) for j in range(min(sample, len(paths)))}):
        try:
            with Image.open(paths[k]) as image:
                sides.append(min(image.size))
        except Exception:  # noqa: BLE001 - an unreadable file is reported when it is loaded
            continue
    return int(np.median(sides)) if sides else None


def open_image(path: str | Path) -> Image.Image:
    """Open an image file lazily (pixels decoded on first use); a failure names the file."""
    try:
        return Image.open(path)
    except Exception as err:
        raise DHashError(f"{path}: cannot read image ({_reason(err)})") from None
