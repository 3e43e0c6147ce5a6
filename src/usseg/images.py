"""Reading image and mask files as they are meant to be seen: EXIF orientation applied, 16-bit rescaled.

Every reader of pixels (manifest sizes, the label cache, training,
diagnostics) goes through here, so an image and its mask always line up:

- **EXIF orientation.** A camera or phone stores a rotated photo unrotated,
  with an EXIF tag saying how to turn it. Viewers apply the tag; a plain
  Pillow read does not, so a rotated JPEG would no longer match its mask.
  The tag is applied to images and masks alike.
- **16-bit greyscale** (Pillow modes ``I;16*`` and ``I``) is rescaled to
  8 bits by the bit depth it really uses: the smallest 2^b - 1 (b >= 8) that
  holds its largest value, so a 12-bit scan stored in 16 bits maps 4095 to
  255. Pillow's own conversion clips at 255 instead (most pixels turn white).
  The range is not stretched per image (min to max): that would give every
  frame full contrast and hide the brightness differences between scanners
  that the domain-shift check measures. Negative and floating-point pixel
  values are refused with a message naming the file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from usseg.errors import DataError

EXIF_ORIENTATION = 0x0112  # the EXIF tag; values 5-8 swap width and height
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # integer greyscale beyond 8 bits


def orientation(im: Image.Image) -> int:
    """The image's EXIF orientation (1 = as stored), 1 when it has none or it is unreadable."""
    try:
        value = im.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 -- a malformed EXIF block must not make the pixels unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def oriented_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) as displayed, after the EXIF orientation."""
    width, height = im.size
    return (height, width) if orientation(im) in (5, 6, 7, 8) else (width, height)


def oriented(im: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (the same image when there is nothing to do)."""
    if orientation(im) == 1:
        return im
    return ImageOps.exif_transpose(im)


def wide_to_uint8(arr: np.ndarray, path) -> np.ndarray:
    """A single-channel integer array beyond 8 bits, rescaled by the bit depth it uses (see module doc)."""
    if arr.size and int(arr.min()) < 0:
        raise DataError(
            f"{path} holds negative pixel values (smallest {int(arr.min())}); usseg reads 8- and 16-bit "
            "unsigned greyscale. Re-export the image as an 8- or 16-bit PNG."
        )
    top = int(arr.max()) if arr.size else 0
    if top <= 255:
        return arr.astype(np.uint8)
    full = 2 ** math.ceil(math.log2(top + 1)) - 1
    return np.rint(arr.astype(np.float64) * (255.0 / full)).astype(np.uint8)


def gray_uint8(im: Image.Image, path) -> np.ndarray:
    """An opened image as (H, W) uint8 grey levels, oriented, 16-bit rescaled."""
    im = oriented(im)
    if im.mode in WIDE_MODES:
        return wide_to_uint8(np.asarray(im), path)
    if im.mode == "F":
        raise DataError(
            f"{path} stores floating-point pixels (Pillow mode F); their intended range is unknown. "
            "Re-export the image as an 8- or 16-bit PNG."
        )
    return np.asarray(im.convert("L"))


def load_gray(path: str | Path) -> np.ndarray:
    """An image file as (H, W) uint8 grey levels, whatever its mode (RGB, RGBA, L, 16-bit, JPG)."""
    with Image.open(path) as im:
        return gray_uint8(im, path)


def load_grayscale(path: str | Path) -> np.ndarray:
    """An image as float32 (H, W) in [0, 1], whatever its mode (RGB, RGBA, L, 16-bit, JPG),
    turned by its EXIF orientation: what training, evaluation and the remedies read."""
    return load_gray(path).astype(np.float32) / 255.0
