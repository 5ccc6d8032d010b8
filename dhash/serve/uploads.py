"""Uploaded images: read the request body within a byte limit, decode it within a pixel limit."""
from __future__ import annotations

import io
import warnings

from PIL import Image

from ..errors import DHashError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel photo decodes; a decompression bomb does not


class RequestError(DHashError):
    """A rejected request, with the HTTP status that says why (400, 409, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The decoded image of ``data``; a non-image, a truncated file or too many pixels is an ``RequestError``.

    The size is checked from the header, before any pixel is decoded, so a small file that would
    decompress to gigabytes (a decompression bomb) costs nothing.
    """
    if not data:
        raise RequestError(400, f"{name}: empty upload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            w, h = image.size
            if w * h > max_pixels:
                raise RequestError(413, f"{name}: {w}x{h} pixels is over the limit of {max_pixels:,} pixels")
            image.load()
    except RequestError:
        raise
    except Image.UnidentifiedImageError:
        raise RequestError(415, f"{name}: not an image file Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RequestError(413, f"{name}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt past the header
        raise RequestError(400, f"{name}: cannot decode image ({' '.join(str(exc).split())[:200]})") from None
    return image
