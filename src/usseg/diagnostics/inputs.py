"""Read the workflow's tables into one object every check shares.

The diagnostics read what earlier stages wrote (manifest, issues, decoded
labels, decode report, splits) and the dataset's own image and mask files.
Everything is joined on `image_id` once, here, so the checks work on one
table (`DiagnosticInputs.images`) and never re-parse CSV files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from usseg import contracts
from usseg.contracts import (
    DECODE_REPORT,
    DECODE_REPORT_COLUMNS,
    TRAIN,
    UNASSIGNED,
    VAL,
)
from usseg.dataset_root import dataset_file
from usseg.dataset_spec import DatasetSpec
from usseg.errors import DataError
from usseg.images import load_gray
from usseg.masks import load_mask_rgb

TRAIN_SPLITS = (TRAIN, VAL)


def resolve_dataset_root(data_root, modalities) -> Path:
    """The folder that holds the modality folders: `data_root` itself, or found below it."""
    root = Path(data_root)
    if all((root / m).is_dir() for m in modalities):
        return root
    from usseg.manifest import find_dataset_root  # only needed when the root is not given directly

    return Path(find_dataset_root(root, list(modalities)))


@dataclass
class DiagnosticInputs:
    dataset: DatasetSpec
    diag_cfg: dict
    root: Path
    labels_dir: Path
    images: pd.DataFrame  # one row per manifest image, joined with split and decode report
    issues: pd.DataFrame

    # ------------------------------------------------------------------ config views
    @property
    def class_names(self) -> list[str]:
        return self.dataset.class_names

    @property
    def palette(self) -> np.ndarray:
        return self.dataset.palette

    @property
    def modalities(self) -> list[str]:
        """Configured modalities first (config order), then any others the manifest holds."""
        configured = self.dataset.modality_names
        extra = sorted(set(self.images["modality"]) - set(configured))
        return configured + extra

    @property
    def target_modality(self) -> str:
        return self.dataset.target_modality

    def domain_of(self, modality: str) -> str:
        domain = self.dataset.domain(modality)
        if domain is not None:
            return domain
        rows = self.images.loc[self.images["modality"] == modality, "domain"]
        return rows.iloc[0] if len(rows) else "unknown"

    def opt(self, key: str, default):
        """A diagnostics setting, with the default used when config.yaml does not set it."""
        value = self.diag_cfg.get(key)
        return default if value is None else value

    # ------------------------------------------------------------------ files
    def image_file(self, row) -> Path:
        return dataset_file(self.root, row["image_path"])

    def mask_file(self, row) -> Path:
        return dataset_file(self.root, row["mask_path"])

    def label_file(self, image_id: str) -> Path:
        return self.labels_dir / f"{image_id}.npy"

    def read_gray(self, row) -> np.ndarray:
        """The image as uint8 grey levels (H, W), oriented and 16-bit rescaled as for training."""
        return load_gray(self.image_file(row))

    def read_mask_rgb(self, row) -> np.ndarray:
        """The colour mask as uint8 RGB (H, W, 3), oriented; alpha and single-channel masks are converted."""
        return load_mask_rgb(self.mask_file(row))

    def read_label(self, image_id: str) -> np.ndarray | None:
        path = self.label_file(image_id)
        if not path.exists():
            return None
        return np.load(path)

    # ------------------------------------------------------------------ subsets
    @property
    def labeled(self) -> pd.DataFrame:
        return self.images[self.images["has_mask"]]


def load_inputs(
    dataset: DatasetSpec | Mapping, diag_cfg, data_root, manifest_csv, issues_csv, labels_dir, splits_csv
) -> DiagnosticInputs:
    """Read and join the workflow's tables; raise DataError naming the file when one is unusable."""
    manifest = contracts.read_manifest(manifest_csv)
    if manifest.empty:
        raise DataError(
            f"manifest {manifest_csv} has no images: check data_root and dataset.modalities in config.yaml."
        )
    if manifest["image_id"].duplicated().any():
        dup = manifest.loc[manifest["image_id"].duplicated(), "image_id"].iloc[0]
        raise DataError(
            f"manifest {manifest_csv} lists image_id {dup!r} more than once; image ids must be unique."
        )
    manifest["has_mask"] = manifest["has_mask"] & (manifest["mask_path"].str.len() > 0)

    splits = contracts.read_splits(splits_csv)
    images = manifest.merge(splits[["image_id", "split"]], on="image_id", how="left")
    images["split"] = images["split"].fillna(UNASSIGNED).replace("", UNASSIGNED)

    decode_csv = Path(labels_dir) / DECODE_REPORT
    decode = (contracts.read_decode_report(decode_csv) if decode_csv.exists()
              else pd.DataFrame(columns=DECODE_REPORT_COLUMNS))
    decode = decode.drop_duplicates("image_id")
    keep = {
        "off_palette_fraction": "off_palette_fraction",
        "far_fraction": "far_fraction",
        "flagged": "decode_flagged",
        "flag_reason": "decode_flag_reason",
        "classes_present": "decode_classes",
    }
    decode = decode[["image_id"] + [c for c in keep if c in decode.columns]].rename(columns=keep)
    images = images.merge(decode, on="image_id", how="left")
    # Images without a decoded mask: nothing off the palette, nothing flagged.
    for col, default in (
        ("off_palette_fraction", 0.0),
        ("far_fraction", 0.0),
        ("decode_flagged", False),
        ("decode_flag_reason", ""),
        ("decode_classes", ""),
    ):
        images[col] = images[col].astype(object).where(images[col].notna(), default)
    for col in ("off_palette_fraction", "far_fraction"):
        images[col] = images[col].astype(float)
    images["decode_flagged"] = images["decode_flagged"].map(contracts.parse_bool)
    images = images.sort_values(["modality", "subject_id", "image_id"], kind="stable").reset_index(
        drop=True
    )

    issues = contracts.read_issues(issues_csv, optional=True)

    dataset = DatasetSpec.of(dataset)
    root = resolve_dataset_root(data_root, dataset.root_entries)
    return DiagnosticInputs(
        dataset=dataset,
        diag_cfg=diag_cfg or {},
        root=root,
        labels_dir=Path(labels_dir),
        images=images,
        issues=issues,
    )
