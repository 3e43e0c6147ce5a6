"""Dataset diagnostics: can this dataset support the segmentation task?

`run_diagnostics` runs the seven checks of the article's checklist, plus
image quality, on the workflow's manifest, decoded labels and splits, writes
a figure and the numbers behind it for each, and returns the verdict
(checklist.json). One module per check; `survey` and `label_stats` read the
image and label files once for all checks; `label_shift` measures organ
presence, size and position per domain for the domain-shift verdict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from usseg.dataset_spec import DatasetSpec
from usseg.diagnostics.baselines import check_baselines
from usseg.diagnostics.checklist import CHECK_ORDER, write_checklist
from usseg.diagnostics.class_balance_check import check_class_balance
from usseg.diagnostics.composition import check_composition
from usseg.diagnostics.domain_shift import DEFAULT_HARMONISE, check_domain_shift
from usseg.diagnostics.image_quality import check_image_quality
from usseg.diagnostics.inputs import load_inputs
from usseg.diagnostics.label_check import check_labels
from usseg.diagnostics.label_shift import check_label_shift
from usseg.diagnostics.label_stats import collect_label_stats
from usseg.diagnostics.leakage import check_leakage
from usseg.diagnostics.outputs import DiagnosticsOutputs
from usseg.diagnostics.subjects import check_subjects
from usseg.diagnostics.survey import survey_images

__all__ = ["CHECK_ORDER", "DiagnosticsOutputs", "run_diagnostics"]

DEFAULT_MAX_IMAGES_PER_DOMAIN = 400
log = logging.getLogger("usseg.diagnostics")


def _timed(name, fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    status = f": {result.status}" if hasattr(result, "status") else ""
    log.info("%s%s (%.1f s)", name, status, time.perf_counter() - start)
    return result


def run_diagnostics(
    dataset: DatasetSpec | Mapping,
    diag_cfg: dict,
    data_root,
    manifest_csv,
    issues_csv,
    labels_dir,
    splits_csv,
    outputs: DiagnosticsOutputs,
    model_image_size=None,
    data_is_demo: bool = False,
) -> dict:
    """Run every check, write its figure and tables to `outputs`, and return the checklist dict.

    `model_image_size` (the experiments' image_size) lets the domain check
    compare what a model sees; `data_is_demo` marks the generated demo, on
    which no published baseline is comparable.
    """
    for folder in {Path(p).parent for p in outputs.files()}:
        folder.mkdir(parents=True, exist_ok=True)
    inputs = load_inputs(
        dataset, diag_cfg or {}, data_root, manifest_csv, issues_csv, labels_dir, splits_csv
    )
    log.info(
        "%d images (%d labeled) below %s", len(inputs.images), len(inputs.labeled), inputs.root
    )
    stats = _timed("label arrays read", collect_label_stats, inputs)
    harmonise = DEFAULT_HARMONISE | (inputs.opt("domain_harmonise", {}) or {})
    survey = _timed(
        "images read and hashed",
        survey_images,
        inputs,
        int(inputs.opt("domain_max_images", DEFAULT_MAX_IMAGES_PER_DOMAIN)),
        int(inputs.opt("seed", 0)),
        int(inputs.opt("fov_threshold", 12)),
        int(harmonise["grid"]),
        int(harmonise["jpeg_quality"]),
        model_image_size,
    )
    label_shift = _timed("label_shift", check_label_shift, inputs, stats, survey, outputs)
    results = [
        _timed("composition", check_composition, inputs, outputs),
        _timed("subjects", check_subjects, inputs, outputs),
        _timed("class_balance", check_class_balance, inputs, stats, outputs),
        _timed(
            "domain_shift",
            check_domain_shift,
            inputs,
            survey,
            outputs,
            label_shift=label_shift,
            model_image_size=model_image_size,
        ),
        _timed("label_verification", check_labels, inputs, stats, outputs),
        _timed("leakage", check_leakage, inputs, survey, outputs),
        _timed("published_baselines", check_baselines, inputs, outputs, data_is_demo),
        _timed("image_quality", check_image_quality, inputs, survey, outputs),
    ]
    checklist = write_checklist(results, outputs, inputs.target_modality)
    log.info("overall: %s", checklist["overall"])
    return checklist
