"""Test-time adaptation (remedy 4): batch-norm statistics re-estimated on unlabeled target frames.

A network trained on simulator images normalises every layer with the
simulator's running means and variances. On scanner images those statistics
are off, and every later layer sees shifted inputs. Re-estimating them on the
target frames (AdaBN; Li et al., "Revisiting batch normalization for practical
domain adaptation", 2016) is a label-free correction: the weights stay, only
the running statistics of the batch-norm layers change.

`adapt_batchnorm` returns an adapted copy; the model passed in is not changed.
The running mean is the average over all frames given, each frame weighted
equally whatever the batch sizes (the momentum of batch k is its share of the
frames seen so far), so the result does not depend on the order of the batches
beyond floating-point rounding; the running variance is the same weighted
average of the within-batch variances, as in AdaBN. Dropout stays off while adapting.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from usseg.errors import DataError, UssegError


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def _as_batch(batch, device) -> torch.Tensor:
    """(N, H, W) or (N, 1, H, W) array/tensor -> (N, 1, H, W) float32 tensor on device."""
    x = torch.as_tensor(np.asarray(batch, dtype=np.float32) if not isinstance(batch, torch.Tensor) else batch)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"adapt_batchnorm: expected batches shaped (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}.")
    return x.to(device=device, dtype=torch.float32)


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, batches: Iterable, device: torch.device | str | None = None) -> nn.Module:
    """A copy of `model` whose batch-norm running statistics come from `batches` (target frames only).

    batches: an iterable of image batches, each (N, H, W) or (N, 1, H, W), float in
    the model's input range. Batches of one image are skipped (their variance is zero
    in the layers where the spatial size collapses). Raises UssegError when the model
    has no batch-norm layers (a model with norm: instance has nothing to adapt) and
    DataError when no usable batch came.
    """
    adapted = copy.deepcopy(model)
    layers = batchnorm_layers(adapted)
    if not layers:
        raise UssegError(
            "test-time adaptation: the model has no batch-norm layers (model.norm: instance?), so there are no "
            "statistics to re-estimate; train with model.norm: batch or choose another remedy."
        )
    if device is None:
        device = next(adapted.parameters()).device
    adapted.to(device)
    saved_momentum = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
    adapted.eval()
    for m in layers:
        m.train()
    n_images = 0
    for batch in batches:
        x = _as_batch(batch, device)
        n = int(x.shape[0])
        if n < 2:
            continue
        # momentum n / (seen + n): the running mean is the average over images, not over batches.
        for m in layers:
            m.momentum = n / (n_images + n)
        adapted(x)
        n_images += n
    for m, momentum in zip(layers, saved_momentum):
        m.momentum = momentum
    adapted.eval()
    if n_images == 0:
        raise DataError(
            "test-time adaptation: no batch of at least 2 target frames was given; batch-norm statistics need "
            "several images (check that the target modality has unlabeled or test images)."
        )
    return adapted


def image_batches(images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """(N, H, W) images cut into batches; a last batch of one image joins the one before."""
    if int(batch_size) < 2:
        raise ValueError(f"image_batches: batch_size {batch_size} must be >= 2 for batch statistics.")
    images = np.asarray(images, dtype=np.float32)
    starts = list(range(0, len(images), int(batch_size)))
    if len(starts) > 1 and len(images) - starts[-1] == 1:
        starts.pop()
    return [images[s:e] for s, e in zip(starts, [*starts[1:], len(images)])]


def adapt_predictor(predictor, images: np.ndarray, batch_size: int = 16):
    """A new usseg.models.NetworkPredictor whose network is batch-norm adapted on `images` ((N, H, W), [0, 1])."""
    from usseg.models import NetworkPredictor  # late: models imports MONAI networks

    if not isinstance(predictor, NetworkPredictor):
        raise UssegError(
            f"test-time adaptation needs a network; the model {predictor.metadata.get('experiment', '?')} is "
            f"a {predictor.metadata.get('model', {}).get('name', type(predictor).__name__)}."
        )
    net = adapt_batchnorm(predictor.net, image_batches(images, batch_size), predictor.device)
    return NetworkPredictor(net, predictor.metadata, predictor.device)
