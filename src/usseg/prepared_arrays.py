"""Every manifest image at one image size, made once: what training, evaluation and the checks read.

Each training used to read, decode and resize its own images (and the
evaluation, the sanity runs and the remedies' target frames theirs); the same
images were resized a dozen times per run. Rule `prepare_arrays` now writes
``results/prepared/{height}x{width}.safetensors`` once per image size the
experiments use:

- ``images``: (N, H, W) float32 in [0, 1], each image read as every stage reads
  it (usseg.images.load_grayscale) and resized on its own to (H, W) (bilinear,
  anti-aliased; `resize_image`), so images of different sizes stack;
- ``labels``: (N, H, W) uint8 palette indices (the cached label arrays of
  results/labels resized by nearest neighbour; `NO_LABEL` where an image has
  none), so any experiment maps them with its own lookup table;
- metadata: the image ids in manifest order, which have labels, the size.

The file is a safetensors file with a stored digest (usseg.checkpoint), so a
damaged one is refused on loading. A stage that is given no prepared file (a
test, a caller outside the workflow) gets the same arrays built in memory
(`build_arrays`), cached for the process: identical numbers either way.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from usseg import contracts
from usseg.dataset_root import dataset_file
from usseg.errors import DataError
from usseg.images import load_grayscale

log = logging.getLogger("usseg.prepared_arrays")

KIND = "usseg-prepared-arrays"
# The label value of an image without labels (never a palette index: the palette has fewer classes).
NO_LABEL = 255


def size_name(size: Sequence[int]) -> str:
    """"96x96" for image size (96, 96): the file name of that size's arrays (height x width)."""
    h, w = (int(s) for s in size)
    return f"{h}x{w}"


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """An (H, W) float image resized to `size` (bilinear, anti-aliased): how every stage sees images."""
    # Late: MONAI costs seconds to import, and only the resize needs it here.
    from monai.transforms import Resize

    size = tuple(int(s) for s in size)
    if tuple(image.shape) == size:
        return np.asarray(image, dtype=np.float32)
    out = Resize(spatial_size=size, mode="bilinear", anti_aliasing=True)(np.asarray(image, np.float32)[None])
    return np.asarray(out, dtype=np.float32)[0]


def resize_nearest(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map, sampling pixel centres (torch's 'nearest-exact')."""
    h, w = labels.shape
    H, W = int(shape[0]), int(shape[1])
    rows = np.minimum(((np.arange(H) + 0.5) * h / H).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(W) + 0.5) * w / W).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]


def read_label_array(path: Path, shape: Sequence[int] | None, n_palette: int) -> np.ndarray:
    """A cached palette-index array (uint8, (H, W)) checked against its image's (H, W) (when given) and the
    palette size."""
    if not path.is_file():
        raise DataError(f"{path}: label array missing; run the decode_masks step first.")
    labels = np.load(path, allow_pickle=False)
    stale = ("the label cache is stale or was written by another tool. Delete results/labels/ and re-run the "
             "decode_masks step.")
    if labels.ndim != 2:
        raise DataError(f"{path}: expected a 2-D label array, got shape {labels.shape}; {stale}")
    if labels.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 class indices, got dtype {labels.dtype}; {stale}")
    if shape is not None and tuple(labels.shape) != tuple(shape):
        raise DataError(
            f"{path}: the label array is {labels.shape[0]}x{labels.shape[1]} (height x width) but its image is "
            f"{shape[0]}x{shape[1]}; {stale}"
        )
    if labels.size and int(labels.max()) >= n_palette:
        raise DataError(
            f"{path}: label value {int(labels.max())} is not a palette index (the palette has {n_palette} classes)."
        )
    return labels


@dataclass(frozen=True)
class ImageArrays:
    """Images and palette-index labels at one size, addressed by image id (see the module docstring)."""

    image_ids: tuple[str, ...]
    images: np.ndarray  # (N, H, W) float32
    labels: np.ndarray  # (N, H, W) uint8 palette indices, NO_LABEL without labels
    has_label: np.ndarray  # (N,) bool

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    @functools.cached_property
    def _position(self) -> dict[str, int]:
        return {image_id: i for i, image_id in enumerate(self.image_ids)}

    def positions(self, ids: Sequence[str], *, labeled: bool = False) -> np.ndarray:
        """Row of each image id; a DataError names ids that are missing (or have no labels, when `labeled`)."""
        missing = [i for i in ids if i not in self._position]
        if missing:
            raise DataError(
                f"{len(missing)} image(s) are not in the prepared arrays (e.g. {missing[0]!r}); the manifest "
                "changed since they were made. Re-run the workflow (snakemake re-makes results/prepared/)."
            )
        rows = np.array([self._position[i] for i in ids], dtype=np.int64)
        if labeled and len(rows) and not self.has_label[rows].all():
            bad = [i for i, r in zip(ids, rows) if not self.has_label[r]]
            raise DataError(
                f"{len(bad)} image(s) have no cached label array (e.g. {bad[0]!r}) although the split trains or "
                "scores on them; re-run the decode_masks step (its decode_report.csv says why a mask was set aside)."
            )
        return rows

    def take(self, ids: Sequence[str]) -> ImageArrays:
        """The arrays of these ids, in this order."""
        rows = self.positions(ids)
        return ImageArrays(tuple(ids), self.images[rows], self.labels[rows], self.has_label[rows])

    def mapped_labels(self, lut: np.ndarray) -> np.ndarray:
        """(N, H, W) uint8 output classes: the palette labels through an experiment's lookup table."""
        if not self.has_label.all():
            raise DataError("mapped_labels: some images have no labels; take() the labeled ones first.")
        return np.asarray(lut, dtype=np.uint8)[self.labels]

    def digest(self) -> str:
        """sha256 of the ids, images and labels: what a training fingerprints as its data."""
        h = hashlib.sha256()
        h.update("\0".join(self.image_ids).encode())
        for arr in (self.images, self.labels, self.has_label):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


def build_arrays(rows: pd.DataFrame, root: Path, labels_dir: Path | None, size: Sequence[int],
                 n_palette: int) -> ImageArrays:
    """The arrays of manifest `rows` (image_id, image_path, height, width) at `size`, read from the files."""
    size = (int(size[0]), int(size[1]))
    n = len(rows)
    images = np.zeros((n, *size), np.float32)
    labels = np.full((n, *size), NO_LABEL, np.uint8)
    has_label = np.zeros(n, bool)
    for i, r in enumerate(rows.itertuples(index=False)):
        image = load_grayscale(dataset_file(root, r.image_path))  # a name that is not UTF-8 too
        images[i] = resize_image(image, size)
        path = None if labels_dir is None else Path(labels_dir) / f"{r.image_id}.npy"
        if path is not None and path.is_file():
            labels[i] = resize_nearest(read_label_array(path, image.shape, n_palette), size)
            has_label[i] = True
    return ImageArrays(tuple(str(i) for i in rows["image_id"]), images, labels, has_label)


def prepare_arrays(manifest_csv, root, labels_dir, size: Sequence[int], n_palette: int, out_path) -> ImageArrays:
    """Rule prepare_arrays: every image of manifest.csv at `size`, written to `out_path`."""
    from usseg import checkpoint

    rows = contracts.read_manifest(manifest_csv)
    arrays = build_arrays(rows, Path(root), Path(labels_dir), size, n_palette)
    meta = {"kind": KIND, "image_size": list(arrays.size), "image_ids": list(arrays.image_ids)}
    checkpoint.save_tensors(out_path, {"images": arrays.images, "labels": arrays.labels,
                                       "has_label": arrays.has_label.astype(np.uint8)}, meta)
    log.info("%d images (%d with labels) at %s written to %s", len(rows), int(arrays.has_label.sum()),
             size_name(size), out_path)
    return arrays


@functools.lru_cache(maxsize=4)
def _read_arrays(path: str, mtime_ns: int, file_size: int) -> ImageArrays:
    from usseg import checkpoint

    tensors, meta = checkpoint.load_tensors(path)
    if meta.get("kind") != KIND:
        raise DataError(f"{path}: not a prepared-arrays file (kind {meta.get('kind')!r}); re-run prepare_arrays.")
    return ImageArrays(tuple(meta["image_ids"]), tensors["images"].numpy(), tensors["labels"].numpy(),
                       tensors["has_label"].numpy().astype(bool))


def read_arrays(path) -> ImageArrays:
    """A file written by `prepare_arrays`, verified; read once per process (several trainings share it)."""
    path = Path(path)
    if not path.is_file():
        from usseg import rerun

        raise DataError(f"{path}: prepared arrays missing; make them with `{rerun.command(str(path))}`.")
    stat = path.stat()
    return _read_arrays(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _built(root: str, manifest: str, labels_dir: str | None, size: tuple[int, int], n_palette: int,
           stamp: tuple) -> ImageArrays:
    rows = contracts.read_manifest(manifest)
    return build_arrays(rows, Path(root), None if labels_dir is None else Path(labels_dir), size, n_palette)


def built_arrays(root, manifest_csv, labels_dir, size: Sequence[int], n_palette: int) -> ImageArrays:
    """`build_arrays` of a whole manifest, cached for the process while the manifest and labels are unchanged."""
    files = [Path(manifest_csv)]
    if labels_dir is not None and Path(labels_dir).is_dir():
        files += sorted(Path(labels_dir).glob("*.npy"))
    stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _built(str(root), str(manifest_csv), None if labels_dir is None else str(labels_dir),
                  (int(size[0]), int(size[1])), int(n_palette), stamp)
