"""One training, prepared (`TrainingJob`), and what determines its result (`training_hash`).

The hash (the training fingerprint) covers the experiment's settings (except
the name and the device, which do not change what is learned; the thread
count does, so it is in), its output classes, the identity of the train and
validation images and the digest of the arrays trained on, the code training
runs (the modules every training imports plus the experiment's own trainer and
remedy families, usseg.training.code) and the library versions, so a changed
setting, dataset, code or library starts over instead of mixing two runs or
copying an old model.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from usseg import checkpoint, data
from usseg.class_balance import class_totals, suggest_class_weights
from usseg.code_deps import code_digest, module_code_files
from usseg.contracts import TrainingOutputs
from usseg.dataset_spec import DatasetSpec
from usseg.errors import ConfigError, DataError
from usseg.experiment import Experiment
from usseg.provenance import library_versions
from usseg.training import code
from usseg.training.batches import TrainingSet

log = logging.getLogger("usseg.train")

# Settings that do not change what is learned; excluded from the config hash so
# that a run pre-empted on a GPU node can resume on another node.
HASH_EXCLUDED_KEYS = ("name", "device")
# Libraries whose version does not change what is learned (left out of the hash).
HASH_EXCLUDED_LIBRARIES = ("snakemake",)
# The module every training runs (its imports are the shared code of every training).
ENTRY_MODULE = "usseg.train"


@dataclass(frozen=True)
class TrainingJob:
    """One training, prepared: what the network, semi-supervised and forest trainers read.

    usseg.train.train_experiment builds it from the experiment and the prepared data.
    outputs: where the trainer writes the model, history, timing and curves (usseg.contracts.TrainingOutputs).
    train, val: the images as tensors (usseg.training.batches.TrainingSet), val None without
    validation images; extras: the remedy's random per-image transforms; target_frames: the
    semi-supervised remedies' unlabeled target frames (N, H, W), else None. checkpoint_dir None:
    no checkpoints (a sanity run in a scratch folder), the best model is kept in memory.
    stop_when(epoch, net): a reason to stop after this epoch, or None (the overfit check's goal).
    label: how the logs name this training (the experiment's name unless a check says otherwise).
    """

    exp: Experiment
    dataset: DatasetSpec
    class_names: list[str]
    lut: np.ndarray
    weights: np.ndarray | None  # one loss weight per output class, or None
    train: TrainingSet
    val: TrainingSet | None
    cfg_hash: str  # the training fingerprint (training_hash) its checkpoints and model carry
    device: torch.device
    outputs: TrainingOutputs
    checkpoint_dir: Path | None
    extras: tuple = ()
    target_frames: np.ndarray | None = None
    on_epoch_end: Callable[[int], None] | None = None
    stop_when: Callable[[int, torch.nn.Module], str | None] | None = None
    label: str = ""

    @property
    def name(self) -> str:
        """How the logs name this training: "experiment <name>", or the check's own label."""
        return self.label or f"experiment {self.exp.name}"

    def moved(self, **changes) -> TrainingJob:
        """The same job with some fields replaced (a teacher's folders, a student's fingerprint)."""
        return dataclasses.replace(self, **changes)


def training_hash(exp: Experiment, dataset: Mapping, table: pd.DataFrame, image_ids, arrays_digest: str) -> str:
    """Hash of everything that determines the trained model (see the module docstring).

    image_ids: every image the training reads (train, validation, target frames); arrays_digest: the
    digest of the arrays it trains on (usseg.prepared_arrays.ImageArrays.digest, labels included).
    """
    ids = set(image_ids)
    rows = table[table["image_id"].isin(ids)].sort_values("image_id")
    fingerprint = [
        [r.get("image_id"), r.get("split"), r.get("sha256", ""), r.get("mask_sha256", "")]
        for r in rows.to_dict("records")
    ]
    settings = {k: v for k, v in exp.settings.items() if k not in HASH_EXCLUDED_KEYS}
    return checkpoint.config_hash(
        {
            "experiment": settings,
            "classes": exp.class_names(dataset),
            "lut": exp.label_lookup(dataset).tolist(),
            "data": fingerprint,
            "arrays": arrays_digest,
            "code": training_code_digest(exp),
            "versions": training_library_versions(),
        }
    )


def training_code_files(exp: Experiment) -> list[Path]:
    """Every usseg file a training of `exp` runs: usseg.train's imports and the experiment's own modules."""
    return sorted(set(module_code_files(ENTRY_MODULE)) | set(code.experiment_code_files(exp)))


def training_code_digest(exp: Experiment) -> str:
    """One digest of `training_code_files`."""
    return code_digest(training_code_files(exp))


def training_library_versions() -> dict:
    return {k: v for k, v in library_versions().items() if k not in HASH_EXCLUDED_LIBRARIES}


def class_weight_vector(exp: Experiment, dataset: Mapping, train_label_paths) -> np.ndarray | None:
    """exp.loss.class_weights as one weight per output class (background first), or None.

    auto: `suggest_class_weights` over the training labels (at their original size, every image
    weighted equally: usseg.class_balance.class_totals) mapped to the output classes, the same
    weights the diagnostics suggest.
    """
    setting = exp.loss.class_weights
    names = exp.class_names(dataset)
    if setting in (None, "none"):
        return None
    if setting == "auto":
        lut = exp.label_lookup(dataset)
        counts = class_totals((data.load_labels(p, lut) for p in train_label_paths), len(names))
        try:
            w = suggest_class_weights(counts)
        except ValueError:
            raise DataError(f"experiment {exp.name}: the training labels hold no pixels; cannot derive class weights.") from None
        log.info(
            "experiment %s: class_weights auto from %d training label maps: %s",
            exp.name, len(train_label_paths), ", ".join(f"{c} {v:.2f}" for c, v in zip(names, w)),
        )
        return w.astype(np.float32)
    w = np.asarray(setting, dtype=np.float32)
    if w.shape != (len(names),):
        raise ConfigError(
            f"{exp.where}.loss.class_weights has {w.size} values; the experiment has {len(names)} output classes."
        )
    return w
