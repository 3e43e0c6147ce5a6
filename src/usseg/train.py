"""Train experiments: `train_experiment` prepares one training and hands it to its trainer.

The trainers live in usseg.training (the network's loop, the semi-supervised
remedies', the random forest's; usseg.training.code picks one by the
experiment's model and remedy). Each writes the files the caller names
(usseg.contracts.TrainingOutputs: the rule's outputs, or the usual names in a
folder): the model (the epoch with the best validation mean foreground Dice),
the history, the timing and the curves; resumability, checkpoints and determinism are
described in usseg.training.loop.

Several trainings in one process (`train_many`, or repeated calls) share what
is read once per process: the imports (torch, MONAI: seconds of CPU per
process) and the prepared arrays of an image size (usseg.prepared_arrays).
Each training seeds every global RNG from its own seed and uses its own
experiment's `threads`, so its model is byte-identical to the same training
run alone, whatever ran before it in the process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from usseg import contracts, data
from usseg.errors import DataError
from usseg.experiment import Experiment
from usseg.models import resolve_device
from usseg.prepared_arrays import ImageArrays
from usseg.training import batches, code, remedy
from usseg.training.job import TrainingJob, class_weight_vector, training_hash

log = logging.getLogger("usseg.train")


def train_experiment(
    exp: Experiment,
    prepared: data.PreparedData,
    outputs: contracts.TrainingOutputs,
    checkpoint_dir,
    *,
    on_epoch_end: Callable[[int], None] | None = None,
    stop_when: Callable[[int, torch.nn.Module], str | None] | None = None,
    arrays: ImageArrays | None = None,
    label: str = "",
) -> None:
    """Train experiment `exp` on the prepared data and write its outputs (`outputs`: the rule's named outputs,
    `contracts.TrainingOutputs.from_rule`, or `TrainingOutputs.in_folder(folder)`; their folders are created).

    checkpoint_dir: where the resumable state goes (None: none is kept, for a run in a scratch folder).
    on_epoch_end(epoch) is called after each epoch's checkpoint is written (for progress hooks and
    for tests that interrupt a run); stop_when(epoch, net) may end the training after an epoch (a
    reason, or None to go on). arrays: the images and palette labels at exp.image_size (default: the
    prepared data's, `PreparedData.arrays`); the sanity checks pass altered ones. label: how the
    logs name the training (default "experiment <name>").
    """
    job = prepare_job(exp, prepared, outputs, checkpoint_dir, on_epoch_end=on_epoch_end, stop_when=stop_when,
                      arrays=arrays, label=label)
    code.trainer(exp).train(job)


def prepare_job(exp: Experiment, prepared: data.PreparedData, outputs: contracts.TrainingOutputs, checkpoint_dir, *,
                on_epoch_end=None, stop_when=None, arrays: ImageArrays | None = None, label: str = "") -> TrainingJob:
    """The TrainingJob of `train_experiment` (its arguments): images as tensors, remedy, weights, fingerprint."""
    torch.set_num_threads(exp.threads)
    outputs.make_folders()
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    name = label or f"experiment {exp.name}"
    device = resolve_device(exp)
    dataset = prepared.dataset
    class_names = exp.class_names(dataset)
    table = prepared.table
    modalities = list(exp.train_modalities)
    train_recs = prepared.records(contracts.TRAIN, modalities)
    if not train_recs:
        raise DataError(
            f"experiment {exp.name}: no labeled training images: {prepared.splits_csv} has no rows with split "
            f"'train' and modality in {modalities} ({data.describe_split_counts(table, modalities)}). "
            "Train on a modality with labeled training images (e.g. train_modalities: [AUS])."
        )
    val_recs = prepared.records(contracts.VAL, modalities)
    if not val_recs:
        # A check's run (label) has none by design: no warning for it.
        (log.info if label else log.warning)(
            "%s: no validation images (split 'val', modalities %s); the last epoch is kept as the model",
            name, modalities)
    arrays = arrays if arrays is not None else prepared.arrays(exp.image_size)
    lut = exp.label_lookup(dataset)
    cached, extras = remedy.training_transforms(exp, prepared)
    train_set = batches.training_set(arrays, train_recs, lut, cached)
    val_set = batches.training_set(arrays, val_recs, lut, cached) if val_recs else None
    frames = None
    frame_ids = remedy.training_frame_ids(exp, table, dataset)
    if code.trainer_kind(exp) == "semi":
        frames = remedy.target_bank(exp, exp.remedy, prepared).images
    read = [r["image_id"] for r in train_recs + val_recs] + frame_ids
    cfg_hash = training_hash(exp, dataset, table, read, arrays.take(read).digest())
    log.info(
        "%s: %d train / %d val images (%s), classes %s, device %s, %d thread(s), config hash %s",
        name, len(train_recs), len(val_recs), ", ".join(modalities), ", ".join(class_names), device,
        exp.threads, cfg_hash,
    )
    return TrainingJob(
        exp=exp, dataset=dataset, class_names=class_names, lut=lut,
        weights=class_weight_vector(exp, dataset, [r[data.LABEL] for r in train_recs]),
        train=train_set, val=val_set, cfg_hash=cfg_hash, device=device, outputs=outputs,
        checkpoint_dir=checkpoint_dir, extras=tuple(extras), target_frames=frames, on_epoch_end=on_epoch_end,
        stop_when=stop_when, label=label,
    )


@dataclass(frozen=True)
class TrainingRun:
    """One training of `train_many`: an experiment (any seed or settings), the prepared data it trains on
    (its own split, e.g. a leave-one-subject-out fold), where it writes and its checkpoint folder."""

    exp: Experiment
    prepared: data.PreparedData
    outputs: contracts.TrainingOutputs
    checkpoint_dir: Path | None


def train_many(runs: Sequence[TrainingRun]) -> None:
    """Train several experiments in this process, one after another (see the module docstring).

    The runs share the process's imports and, per image size, the prepared arrays; each result is the
    one `train_experiment` gives alone. Runs of the same prepared data and size read its arrays once.
    """
    for i, run in enumerate(runs, start=1):
        log.info("training %d of %d: experiment %s (seed %d)", i, len(runs), run.exp.name, run.exp.seed)
        train_experiment(run.exp, run.prepared, run.outputs, run.checkpoint_dir)

