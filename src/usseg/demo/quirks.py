"""The files' quirks, as the reference dataset has them: mask formats (RGB, RGBA,
palette-indexed), the simulator's padding strip, anti-aliased real borders,
a tinted background, JPEG scanner exports. Fixed encoder settings and no
metadata keep the bytes the same on every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from usseg.demo.anatomy import DEFAULT_CLASSES, ORGANS, REAL_LABELED
from usseg.demo.rendering import PADDING_GREY, _strip_rows

TINT_RGB = (10, 0, 10)  # the one real mask whose background is not quite black
JPEG_QUALITY = 85
PNG_COMPRESS_LEVEL = 3  # zlib level: fast, and the same bytes on every run
# Share of the way a real-mask border pixel moves from its majority colour towards the
# area-averaged colour. A full blend would put many border pixels farther than the
# decoder's off-palette distance (60) from every colour; the reference masks' borders
# stay within it, so the blend is partial.
ANTI_ALIAS_STRENGTH = 0.3
MASK_SUPERSAMPLING = 3

# Mask file format per simulator subject (index in the train / test list): the
# reference mixes RGB, RGBA and palette-indexed files.
AUS_MASK_MODES = {("train", 2): "P", ("train", 4): "RGBA", ("test", 1): "RGBA"}
RUS_MASK_MODES = {"b": "RGBA"}

# ----------------------------------------------------------------------------- masks


def _palette_colours(classes) -> np.ndarray:
    """Colour of each internal organ code, looked up by class name."""
    by_name = {c["name"]: tuple(int(v) for v in c["rgb"]) for c in (classes or DEFAULT_CLASSES)}
    missing = [n for n in ORGANS if n not in by_name]
    if missing:
        raise ValueError(
            f"the demo dataset draws {', '.join(ORGANS)}; dataset.classes lacks {', '.join(missing)}. "
            "Add those classes (with their colours) or point data_root at a real dataset."
        )
    return np.array([by_name[n] for n in ORGANS], dtype=np.uint8)


def simulator_mask(labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Crisp RGB mask of a simulator frame, with the padding strip in (10,10,10)."""
    rgb = colours[labels]
    rgb[-_strip_rows(labels.shape[0]) :, :] = PADDING_GREY
    return rgb


def real_mask(fine_labels: np.ndarray, ss: int, colours: np.ndarray) -> np.ndarray:
    """RGB mask of a real frame from a supersampled label map, with anti-aliased borders.

    Only the five organs the reference annotates keep their colour. A border pixel
    moves part of the way from its majority colour to the area-averaged one.
    """
    annotated = np.zeros(len(ORGANS), dtype=np.uint8)
    annotated[list(REAL_LABELED)] = REAL_LABELED
    fine = annotated[fine_labels]
    subs = [
        fine[i::ss, j::ss] for i in range(ss) for j in range(ss)
    ]  # the ss*ss samples of each pixel
    rgb = colours[subs[0]].astype(np.float32)
    mixed = np.minimum.reduce(subs) != np.maximum.reduce(subs)
    if mixed.any():
        samples = np.stack([sub[mixed] for sub in subs], axis=1)  # (n border pixels, ss*ss)
        counts = (samples[:, :, None] == np.arange(len(ORGANS), dtype=np.uint8)).sum(1)
        majority = counts.argmax(-1)
        mean_rgb = sum(
            counts[:, k, None] * colours[k].astype(np.float32) for k in range(len(ORGANS))
        ) / (ss * ss)
        major_rgb = colours[majority].astype(np.float32)
        rgb[mixed] = major_rgb + ANTI_ALIAS_STRENGTH * (mean_rgb - major_rgb)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _save_mask(rgb: np.ndarray, path: Path, mode: str, colours: np.ndarray) -> None:
    if mode == "RGBA":
        alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
        img = Image.fromarray(np.concatenate([rgb, alpha], axis=-1), mode="RGBA")
    elif mode == "P":
        # Palette-indexed, one channel: the class colours plus the padding grey.
        table = np.concatenate([colours, np.full((1, 3), PADDING_GREY, dtype=np.uint8)])
        index = np.full(rgb.shape[:2], 255, dtype=np.uint8)
        for i, colour in enumerate(table):
            index[(rgb == colour).all(-1)] = i
        if (index == 255).any():
            raise ValueError(
                "a palette-mode mask may only hold palette colours (simulator masks are crisp)"
            )
        img = Image.fromarray(index, mode="P")
        img.putpalette(table.ravel().tolist())
    else:
        img = Image.fromarray(rgb, mode="RGB")
    img.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def _save_image(grey: np.ndarray, path: Path, real: bool) -> None:
    if real:
        # Scanner exports: RGB JPEG, fixed quality and subsampling, no EXIF.
        Image.fromarray(np.repeat(grey[..., None], 3, axis=-1), mode="RGB").save(
            path,
            format="JPEG",
            quality=JPEG_QUALITY,
            subsampling=2,
            optimize=False,
            progressive=False,
        )
    else:
        Image.fromarray(grey, mode="L").save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


