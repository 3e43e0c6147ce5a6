"""The training images as tensors, shuffled and augmented one batch at a time.

The images and labels come from the prepared arrays (usseg.prepared_arrays): at
the experiment's image size already, so a training reads no file and resizes
nothing. `training_set` maps the labels to the experiment's classes and runs
the remedy's cached transforms (the fan mask, the normalisation) once per image.

Each epoch (`epoch_batches`) draws, from one generator seeded by (seed, epoch):
the order of the images, then per batch the augmentation of
`experiment.augmentation` on the whole batch at once:

- flip: left-right (depth runs down the image), image, label and fan together,
  with probability `flip_prob` per image;
- noise: Gaussian noise added with probability `noise_prob`, its standard
  deviation drawn per image uniformly from [0, noise_std] (as MONAI's
  RandGaussianNoise with sample_std);
- contrast: with probability `contrast_prob` a gamma drawn from
  `contrast_gamma`, as MONAI's AdjustContrast:
  ((x - min) / (max - min + 1e-7)) ^ gamma * (max - min) + min per image.

Then the remedy's random transforms (style transfer, ultrasound augmentation,
the generic strong augmentation: MONAI dictionary transforms, usseg.remedies)
run per image, their random state set from (seed, epoch) at the start of the
epoch. An epoch's batches thus depend only on the data, the settings, the seed
and the epoch, not on how many epochs ran before in this process: a resumed
training sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from usseg.prepared_arrays import ImageArrays

IMAGE, LABEL, FOV = "image", "label", "fov"
CONTRAST_EPSILON = 1e-7  # MONAI AdjustContrast's


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch`'s shuffling and augmentation."""
    return (int(seed) * 1_000_003 + int(epoch)) % (2**63 - 1)


@dataclass
class TrainingSet:
    """Images (N, 1, H, W) float32, labels (N, 1, H, W) float32 output classes, the fan masks (N, 1, H, W)
    bool when a remedy made them, and each image's modality (the style remedies restyle by modality)."""

    images: torch.Tensor
    labels: torch.Tensor
    fovs: torch.Tensor | None
    modalities: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def training_set(arrays: ImageArrays, records: Sequence[Mapping], lut: np.ndarray, cached: Sequence = ()) -> TrainingSet:
    """The records' images and labels (mapped by `lut`) from `arrays`, after the remedy's cached transforms."""
    ids = [r["image_id"] for r in records]
    rows = arrays.take(ids)
    arrays.positions(ids, labeled=True)  # a DataError names images without labels
    images = rows.images.astype(np.float32)
    labels = rows.mapped_labels(lut)
    modalities = [str(r.get("modality", "")) for r in records]
    fovs = None
    if cached:
        out_images, out_fovs = [], []
        for image, label, modality in zip(images, labels, modalities):
            d = {IMAGE: image[None].copy(), LABEL: label[None].astype(np.float32), "modality": modality}
            for tf in cached:
                d = tf(d)
            out_images.append(np.asarray(d[IMAGE], dtype=np.float32)[0])
            out_fovs.append(np.asarray(d[FOV], dtype=bool)[0] if FOV in d else np.ones(image.shape, bool))
        images = np.stack(out_images)
        fovs = torch.as_tensor(np.stack(out_fovs)[:, None])
    return TrainingSet(torch.as_tensor(images[:, None]), torch.as_tensor(labels[:, None].astype(np.float32)), fovs,
                       modalities)


def augment_batch(x: torch.Tensor, y: torch.Tensor, fov: torch.Tensor | None, aug: Mapping,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The module docstring's flip, noise and contrast on a batch (new tensors; the inputs are kept).

    Every random number is drawn whatever the settings, so a changed probability does not shift the
    draws of the other augmentations.
    """
    n = x.shape[0]
    u = torch.rand(n, 3, generator=generator)  # flip, noise, contrast: applied where u < prob
    sd = torch.rand(n, generator=generator) * float(aug.get("noise_std", 0.0))
    noise = torch.randn(x.shape, generator=generator)
    low, high = (float(g) for g in aug.get("contrast_gamma", (1.0, 1.0)))
    gamma = low + (high - low) * torch.rand(n, generator=generator)

    flip = (u[:, 0] < float(aug.get("flip_prob", 0.0))).view(n, 1, 1, 1)
    x = torch.where(flip, x.flip(-1), x)
    y = torch.where(flip, y.flip(-1), y)
    if fov is not None:
        fov = torch.where(flip, fov.flip(-1), fov)
    if float(aug.get("noise_std", 0.0)) > 0:
        add = (u[:, 1] < float(aug.get("noise_prob", 0.0))).view(n, 1, 1, 1)
        x = torch.where(add, x + noise * sd.view(n, 1, 1, 1), x)
    contrast = (u[:, 2] < float(aug.get("contrast_prob", 0.0)))
    if bool(contrast.any()):
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        span = x.amax(dim=(1, 2, 3), keepdim=True) - lo
        adjusted = ((x - lo) / (span + CONTRAST_EPSILON)).clamp_min(0) ** gamma.view(n, 1, 1, 1) * span + lo
        x = torch.where(contrast.view(n, 1, 1, 1), adjusted, x)
    return x, y, fov


def _per_image(x: torch.Tensor, y: torch.Tensor, fov: torch.Tensor | None, modalities: Sequence[str],
               transform) -> tuple[torch.Tensor, torch.Tensor]:
    """The remedy's random transforms (one Compose) on each image of a batch."""
    xs, ys = [], []
    for i in range(x.shape[0]):
        d = {IMAGE: x[i].numpy(), LABEL: y[i].numpy(), "modality": modalities[i]}
        if fov is not None:
            d[FOV] = fov[i].numpy()
        d = transform(d)
        xs.append(torch.as_tensor(np.asarray(d[IMAGE], dtype=np.float32)))
        ys.append(torch.as_tensor(np.asarray(d[LABEL], dtype=np.float32)))
    return torch.stack(xs), torch.stack(ys)


def epoch_batches(data: TrainingSet, aug: Mapping, batch_size: int, seed: int, epoch: int,
                  extras: Sequence = ()) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Epoch `epoch`'s (images, labels) batches: shuffled, augmented (module docstring), on the CPU."""
    generator = torch.Generator()
    generator.manual_seed(epoch_seed(seed, epoch))
    order = torch.randperm(len(data), generator=generator)
    transform = None
    if extras:
        from monai.transforms import Compose  # late: only the remedies' transforms need it

        transform = Compose(list(extras))
        transform.set_random_state(seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    for start in range(0, len(data), int(batch_size)):
        idx = order[start:start + int(batch_size)]
        fov = None if data.fovs is None else data.fovs[idx]
        x, y, fov = augment_batch(data.images[idx], data.labels[idx], fov, aug, generator)
        if transform is not None:
            x, y = _per_image(x, y, fov, [data.modalities[i] for i in idx.tolist()], transform)
        yield x, y
