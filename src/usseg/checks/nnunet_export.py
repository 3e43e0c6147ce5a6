"""Export the prepared data to nnU-Net v2's raw format, with usseg's own split.

nnU-Net (Isensee et al., Nature Methods 2021) is the field's default
baseline. This export lets it train on exactly the images, labels and
subject-grouped train/validation split that usseg trains on, so its result is
a reference for usseg's models and not a different experiment:

    {out_dir}/                       Dataset{id:03d}_{name}, put it under $nnUNet_raw
      dataset.json                   channel_names, labels, numTraining, file_ending (.png)
      imagesTr/{case}_0000.png       training + validation images (grayscale, 8 bit)
      labelsTr/{case}.png            their label maps (palette indices, 8 bit)
      imagesTs/{test_set}/{case}_0000.png   one folder per test set
      labelsTs/{test_set}/{case}.png        their labels, to score predictions
      splits_final.json              fold 0 = usseg's split: train -> "train", val -> "val"
      cases.csv                      case id -> image_id, subject_id, modality, split, folder

The case id is usseg's image_id. nnU-Net trains on the splits_final.json of
its preprocessed folder; its planner (`nnUNetv2_plan_and_preprocess`) copies
the raw folder's file there (nnunetv2 2.8). Train fold 0. Without the file
nnU-Net draws its own random 5-fold split over images, which puts frames of one
subject on both sides. Labels are the cached palette indices (every palette
class, background 0), not re-decoded from the colour masks.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

from usseg.contracts import TRAIN, VAL
from usseg.dataset_spec import DatasetSpec
from usseg.errors import ConfigError, DataError

if TYPE_CHECKING:
    from usseg.data import PreparedData

# usseg.data (MONAI, torch) is imported where the export runs: the workflow
# imports this module's neighbour usseg.checks.nnunet_reference at every start-up.

log = logging.getLogger("usseg.checks.nnunet_export")

FILE_ENDING = ".png"
CHANNEL_SUFFIX = "_0000"
CASES_COLUMNS = ["case_id", "image_id", "subject_id", "modality", "split", "folder"]


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name for a dataset, e.g. Dataset501_usseg."""
    if not 1 <= int(dataset_id) <= 999:
        raise ConfigError(f"nnunet.dataset_id = {dataset_id}; nnU-Net dataset ids are 1..999.")
    return f"Dataset{int(dataset_id):03d}_{name}"


def dataset_json(dataset: DatasetSpec | Mapping, num_training: int) -> dict:
    """nnU-Net's dataset.json: one grayscale channel, every palette class by its index."""
    names = DatasetSpec.of(dataset).class_names
    # nnU-Net requires the label 0 to be called "background", whatever the palette calls it.
    labels = {"background": 0, **{n: i for i, n in enumerate(names) if i > 0}}
    return {
        "channel_names": {"0": "ultrasound"},
        "labels": labels,
        "numTraining": int(num_training),
        "file_ending": FILE_ENDING,
        # PNGs would be read by this reader anyway; naming it keeps nnU-Net from guessing.
        "overwrite_image_reader_writer": "NaturalImage2DIO",
        "description": "exported by usseg (usseg.checks.nnunet_export); case ids are usseg image ids",
    }


def _write_case(record: dict, images_dir: Path, labels_dir: Path | None) -> None:
    from usseg import data
    from usseg.images import load_gray

    case = record["image_id"]
    # Grayscale as usseg reads it, at 8 bit: by the dataset's reading rule (EXIF orientation, the bit
    # depth of wider pixels, the size limit), so it matches the label array decoded by the same rule.
    gray = Image.fromarray(load_gray(record[data.IMAGE]), mode="L")
    gray.save(images_dir / f"{case}{CHANNEL_SUFFIX}{FILE_ENDING}")
    size = gray.size
    if labels_dir is not None:
        labels = np.load(record[data.LABEL], allow_pickle=False)
        if labels.shape != (size[1], size[0]):
            raise DataError(
                f"{record[data.LABEL]}: label array is {labels.shape[1]}x{labels.shape[0]} but image "
                f"{record[data.IMAGE]} is {size[0]}x{size[1]}; re-run the decode_masks step."
            )
        Image.fromarray(labels.astype(np.uint8), mode="L").save(labels_dir / f"{case}{FILE_ENDING}")


def check_subject_split(train_subjects, val_subjects) -> None:
    shared = sorted(set(train_subjects) & set(val_subjects))
    if shared:
        raise DataError(
            f"subjects {', '.join(shared[:5])} are in both the training and the validation split; "
            "nnU-Net would be validated on subjects it trained on. Re-run the split step."
        )


def export_nnunet(prepared: PreparedData, nnunet_cfg: dict, test_sets, out_dir) -> dict:
    """Write the nnU-Net raw dataset (layout in the module docstring) to out_dir; return counts."""
    from usseg import data

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    dataset, table = prepared.dataset, prepared.table
    modalities = list(nnunet_cfg["train_modalities"])
    unknown = [m for m in modalities if m not in dataset.modality_names]
    if unknown:
        raise ConfigError(
            f"nnunet.train_modalities: {', '.join(unknown)} is not a modality of dataset.modalities "
            f"({', '.join(dataset.modality_names)})."
        )
    train = prepared.records(TRAIN, modalities)
    val = prepared.records(VAL, modalities)
    if not train:
        raise DataError(
            f"{prepared.splits_csv}: no training images of modalities {modalities} "
            f"({data.describe_split_counts(table, modalities)}); nothing to export for nnU-Net."
        )
    check_subject_split([r["subject_id"] for r in train], [r["subject_id"] for r in val])

    images_tr, labels_tr = out_dir / "imagesTr", out_dir / "labelsTr"
    for d in (images_tr, labels_tr):
        d.mkdir(parents=True)
    cases = []
    for split, records in (("train", train), ("val", val)):
        for r in records:
            _write_case(r, images_tr, labels_tr)
            cases.append([r["image_id"], r["image_id"], r["subject_id"], r["modality"], split, "imagesTr"])
    counts = {"train": len(train), "val": len(val)}
    for test_set in test_sets:
        records = prepared.records(test_set)
        images_ts, labels_ts = out_dir / "imagesTs" / test_set, out_dir / "labelsTs" / test_set
        for d in (images_ts, labels_ts):
            d.mkdir(parents=True)
        for r in records:
            _write_case(r, images_ts, labels_ts)
            cases.append([r["image_id"], r["image_id"], r["subject_id"], r["modality"], test_set,
                          f"imagesTs/{test_set}"])
        counts[test_set] = len(records)

    (out_dir / "dataset.json").write_text(json.dumps(dataset_json(dataset, len(train) + len(val)), indent=2))
    splits_final = [{"train": sorted(r["image_id"] for r in train), "val": sorted(r["image_id"] for r in val)}]
    (out_dir / "splits_final.json").write_text(json.dumps(splits_final, indent=2))
    pd.DataFrame(cases, columns=CASES_COLUMNS).to_csv(out_dir / "cases.csv", index=False)
    log.info(
        "nnU-Net dataset %s: %s", out_dir,
        ", ".join(f"{k} {v} images" for k, v in counts.items()),
    )
    return counts


def read_splits_final(path) -> list[dict]:
    """splits_final.json as written by export_nnunet, checked for subjects on both sides via cases.csv beside it."""
    path = Path(path)
    folds = json.loads(path.read_text())
    cases = pd.read_csv(path.with_name("cases.csv"), dtype=str, keep_default_na=False)
    subject = dict(zip(cases["case_id"], cases["subject_id"]))
    for fold in folds:
        check_subject_split([subject[c] for c in fold["train"]], [subject[c] for c in fold["val"]])
    return folds
