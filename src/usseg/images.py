"""Reading image and mask files as they are meant to be seen: EXIF orientation applied, one rule per dataset.

Every reader of pixels (manifest sizes, the label cache, training,
diagnostics) goes through here, so an image and its mask always line up:

- **EXIF orientation.** A camera or phone stores a rotated photo unrotated,
  with an EXIF tag saying how to turn it. Viewers apply the tag; a plain
  Pillow read does not, so a rotated JPEG would no longer match its mask.
  The tag is applied to images and masks alike.
- **Images wider than 8 bits** (Pillow modes ``I;16*`` and ``I``) are scaled
  to 8 bits by one bit depth for the whole dataset (`ReadingRule.bit_depth`):
  the one declared in `dataset.bit_depth`, or the smallest that holds the
  largest value of any image of the dataset (found by the manifest step), so
  a raw 1000 is the same grey level in every frame. Never per frame (a dim
  frame would be brightened and a scanner's brightness differences, which the
  domain-shift check measures, hidden), and never clipped at 255 as
  Pillow's own conversion does. Negative and floating-point pixel values are
  set aside by the manifest; read anyway, they are refused naming the file.
- **Very large images** are read down-sampled by a whole factor so that their
  longer side is at most `ReadingRule.max_side` (`dataset.max_image_side`):
  images by box averaging, masks by the nearest pixel, to the same size, so
  they still line up. The manifest records the sizes as read.

The rule is one per dataset: the manifest step decides it and records it in
results/dataset_root.json, and every later stage installs it from there
(usseg.dataset_root.read_dataset_root) before it reads a pixel. Without an
installed rule, images wider than 8 bits are read as 16-bit and nothing is
down-sampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from usseg.errors import DataError


@dataclass(frozen=True)
class ReadingRule:
    """How this dataset's pixels are read: the bit depth of images wider than 8 bits, the size limit."""

    bit_depth: int = 16  # a wide pixel value v reads as round(v * 255 / (2**bit_depth - 1)), at most 255
    max_side: int | None = None  # longer side above this: read down-sampled by a whole factor
    description: str = ""  # how bit_depth was chosen, for the diagnostics
    downsampled: int = 0  # images of the dataset larger than max_side (read down-sampled)

    def factor(self, width: int, height: int) -> int:
        """The whole down-sampling factor of an image of this size (1: read as it is)."""
        side = max(int(width), int(height))
        if not self.max_side or side <= self.max_side:
            return 1
        return math.ceil(side / self.max_side)

    def size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of an image of this (oriented) size as read."""
        f = self.factor(width, height)
        return (math.ceil(int(width) / f), math.ceil(int(height) / f)) if f > 1 else (int(width), int(height))

    def to_json(self) -> dict:
        return {"bit_depth": self.bit_depth, "max_image_side": self.max_side, "bit_depth_rule": self.description,
                "downsampled_images": self.downsampled}

    @classmethod
    def from_json(cls, record: dict) -> ReadingRule:
        side = record.get("max_image_side")
        return cls(int(record.get("bit_depth", 16)), None if side is None else int(side),
                   str(record.get("bit_depth_rule", "")), int(record.get("downsampled_images", 0)))

    def summary(self) -> str:
        """How this dataset's pixels were read, in a sentence or two (for the diagnostics)."""
        text = f"Pixels: {self.description or f'images beyond 8 bits read as {self.bit_depth}-bit'}."
        if self.downsampled:
            text += (f" {self.downsampled} image(s) larger than dataset.max_image_side = {self.max_side} px are "
                     "read down-sampled by a whole factor (sizes in manifest.csv are as read).")
        return text


_RULE = [ReadingRule()]  # the installed rule (a list: one process-wide slot)


def use_reading_rule(rule: ReadingRule) -> None:
    """Install the dataset's reading rule for every read in this process (read_dataset_root does)."""
    _RULE[0] = rule


def reading_rule() -> ReadingRule:
    """The reading rule in force (ReadingRule() until one is installed)."""
    return _RULE[0]


def bit_depth_for(largest_value: int) -> int:
    """The smallest bit depth (at least 8) whose largest value holds `largest_value`."""
    return max(8, math.ceil(math.log2(int(largest_value) + 1))) if largest_value > 0 else 8


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


def wide_to_uint8(arr: np.ndarray, path, bit_depth: int | None = None) -> np.ndarray:
    """A single-channel integer array beyond 8 bits as uint8, scaled by the dataset's bit depth
    (`bit_depth`, default the installed ReadingRule's; see the module doc). Values beyond it read as 255."""
    if arr.size and int(arr.min()) < 0:
        raise DataError(
            f"{path} holds negative pixel values (smallest {int(arr.min())}); usseg reads 8- and 16-bit "
            "unsigned greyscale. Re-export the image as an 8- or 16-bit PNG."
        )
    bits = int(bit_depth or reading_rule().bit_depth)
    if bits <= 8:
        return np.clip(arr, 0, 255).astype(np.uint8)
    full = float(2**bits - 1)
    return np.rint(np.clip(arr.astype(np.float64), 0, full) * (255.0 / full)).astype(np.uint8)


def downsample_nearest(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (H, W[, C]) array at (width, height) `size` by the nearest pixel (pixel centres): a mask keeps
    only colours or classes it had."""
    h, w = arr.shape[:2]
    width, height = size
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return arr[rows[:, None], cols[None, :]]


def gray_uint8(im: Image.Image, path) -> np.ndarray:
    """An opened image as (H, W) uint8 grey levels, read by the dataset's rule: oriented, wide pixels
    scaled by the dataset's bit depth, down-sampled (box) when larger than the size limit."""
    im = oriented(im)
    if im.mode in WIDE_MODES:
        gray = wide_to_uint8(np.asarray(im), path)
    elif im.mode == "F":
        raise DataError(
            f"{path} stores floating-point pixels (Pillow mode F); their intended range is unknown. "
            "Re-export the image as an 8- or 16-bit PNG."
        )
    else:
        gray = np.asarray(im.convert("L"))
    rule = reading_rule()
    height, width = gray.shape
    if rule.factor(width, height) > 1:
        gray = np.asarray(Image.fromarray(gray).resize(rule.size(width, height), Image.BOX))
    return gray


def load_gray(path: str | Path) -> np.ndarray:
    """An image file as (H, W) uint8 grey levels, whatever its mode (RGB, RGBA, L, 16-bit, JPG)."""
    with Image.open(path) as im:
        return gray_uint8(im, path)


def load_grayscale(path: str | Path) -> np.ndarray:
    """An image as float32 (H, W) in [0, 1], whatever its mode (RGB, RGBA, L, 16-bit, JPG),
    turned by its EXIF orientation: what training, evaluation and the remedies read."""
    return load_gray(path).astype(np.float32) / 255.0
