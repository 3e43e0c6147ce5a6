"""Synthetic ultrasound-like frames for the remedy tests (`from remedy_images import fan_frame`)."""

from __future__ import annotations

import numpy as np


def fan_mask(size: int = 64) -> np.ndarray:
    """A sector (apex at the top centre, +-40 degrees, radius 0.95 * size) as an (H, W) bool mask."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = x - (size - 1) / 2, y + 2.0
    r = np.hypot(dx, dy)
    angle = np.degrees(np.arctan2(dx, dy))
    return (r < 0.95 * size) & (np.abs(angle) < 40)


def fan_frame(size: int = 64, seed: int = 0, gain: float = 0.5, contrast: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """(image (1, H, W) float32 in [0, 1], label (1, H, W) float32 classes 0-2) of a speckled fan with two organs."""
    rng = np.random.default_rng(seed)
    fan = fan_mask(size)
    y, x = np.mgrid[0:size, 0:size]
    label = np.zeros((size, size), np.float32)
    label[fan & ((y - size * 0.45) ** 2 + (x - size * 0.4) ** 2 < (size * 0.15) ** 2)] = 1
    label[fan & ((y - size * 0.7) ** 2 + (x - size * 0.6) ** 2 < (size * 0.1) ** 2)] = 2
    base = gain + contrast * np.where(label == 1, 1.0, np.where(label == 2, -1.0, 0.0))
    speckle = rng.gamma(6.0, 1 / 6.0, size=(size, size))
    image = np.where(fan, np.clip(base * speckle, 0.06, 1.0), 0.0).astype(np.float32)
    return image[None], label[None]
