"""Own data through the real workflow, as docs/own-data.md says: describe, confirm, run.

Two runs (228 CPU seconds together, user + sys, measured at a load average of 8-9 on 2 shared
cores; 8.4 minutes of wall time there): a dataset with renamed modality folders
(sim/, clinic/) in which odd inputs are planted at once (a Latin-1 file name, a
244-character name, a truncated test JPEG whose subject has no other image,
16-bit images at two brightness levels, an image over the size limit, and
`lr: 1e-3` in an overlay); and a flat images/ + labels/ folder of class-index
masks. Neither needs an edit of config.yaml; both end in a report with a verdict;
on neither is a published baseline comparable; every input file is a manifest
row, an issues row or a counted exclusion; no message calls anything a bug.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import REPO, run_snakemake
from datasets import confirmed, make_own_dataset, soft_disk_mask
from usseg.describe import describe

pytestmark = pytest.mark.e2e

QUICK = REPO / "configs" / "quick.yaml"
# The documented commands take configs/quick.yaml and the description; this third
# overlay only shrinks the models to the test's time budget.
SMALL = """\
experiment_defaults:
  model: {channels: [4, 8, 16], strides: [2, 2], num_res_units: 0}
  image_size: [32, 32]
  epochs: 2
  batch_size: 4
  optimizer: {lr: 1e-3}   # YAML 1.1 reads this as text: accepted as the number, with a note
  device: cpu
sanity: {overfit_epochs: 20, shuffled_epochs: 1}
diagnostics: {domain_permutations: 100, domain_cv_folds: 2}
"""
LONG_STEM = "s09_" + "1" * 240  # 244 characters: a legal name, too long for {image_id}.npy


def _plant_odd_inputs(root: Path) -> dict:
    """Odd inputs in the renamed dataset; returns what each planted file is, by its path as listed."""
    sim, clinic = root / "sim", root / "clinic"
    planted = {}
    # A Latin-1 (not UTF-8) name, with its mask.
    name = os.fsdecode(b"s0\xe9_1.png")
    _frame(sim / "images/train" / name, sim / "masks/train" / name, "latin1")
    planted["sim/images/train/s0\\xe9_1.png"] = "latin1"
    # A 244-character name, with its mask.
    _frame(sim / "images/train" / f"{LONG_STEM}.png", sim / "masks/train" / f"{LONG_STEM}.png", "long")
    # A truncated test JPEG whose subject p8 has no other image: the test set loses p8.
    _frame(clinic / "images/test/p8-1.jpg", clinic / "masks/test/p8-1.png", "p8-1")
    data = (clinic / "images/test/p8-1.jpg").read_bytes()
    (clinic / "images/test/p8-1.jpg").write_bytes(data[: len(data) // 2])
    # 16-bit images: a 12-bit scanner's frame reaching 4095, and a dimmer one of the same tissue.
    for stem, top in (("s01_1", 4095), ("s01_2", 1000)):
        arr = np.full((40, 48), 1000, np.uint16)
        arr[0, 0] = top
        Image.fromarray(arr).save(sim / "images/train" / f"{stem}.png")
    # An image (and mask) over the size limit the description sets (max_image_side: 64).
    _frame(sim / "images/train/s02_9.png", sim / "masks/train/s02_9.png", "big", size=(160, 120))
    return planted


def _frame(image_path: Path, mask_path: Path, key: str, size=(48, 40)) -> None:
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(key))
    Image.fromarray(rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)).save(image_path)
    Image.fromarray(soft_disk_mask(key, size)).save(mask_path)


# Each layout's run and the page it writes: the renamed layout runs the documented quick `report`
# (training included); the flat one the documented first look, `diagnostics_report` (no training), which
# is what differs between the layouts (reading, splitting, checking) at a fraction of the suite's time.
TARGETS = {"report": "results/report/report.html", "diagnostics_report": "results/report/diagnostics.html"}


def _own_run(tmp_path_factory, kind: str, plant: bool, target: str = "report"):
    base = tmp_path_factory.mktemp(f"own_{kind}")
    folder = make_own_dataset(base / "data", kind)
    planted = _plant_odd_inputs(folder / "hospital_export") if plant else {}
    text = confirmed(describe(folder))
    if plant:
        text = text.replace("  modalities:\n", "  max_image_side: 64\n  modalities:\n", 1)
    (base / "mine.yaml").write_text(text)
    (base / "small.yaml").write_text(SMALL)
    work = base / "run"
    work.mkdir()
    proc = run_snakemake(work, "--cores", "2", target, "--configfile", str(QUICK), str(base / "mine.yaml"),
                         str(base / "small.yaml"), configfile=QUICK)
    return work, proc.stdout + proc.stderr, planted, TARGETS[target]


@pytest.fixture(scope="module")
def renamed_run(tmp_path_factory):
    return _own_run(tmp_path_factory, "renamed", plant=True)


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory):
    return _own_run(tmp_path_factory, "flat_index", plant=False, target="diagnostics_report")


def _dataset_files(work: Path) -> set[str]:
    root = Path(json.loads((work / "results/dataset_root.json").read_text())["dataset_root"])
    files = set()
    for dirpath, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), root)
            files.add(os.fsencode(rel).decode("utf-8", errors="backslashreplace"))
    return files


def _checks(work: Path) -> dict:
    checklist = json.loads((work / "results/diagnostics/checklist.json").read_text())
    return {c["id"]: c for c in checklist["checks"]}


@pytest.mark.parametrize("run", ["renamed_run", "flat_run"])
def test_each_layout_ends_in_a_report_with_a_verdict_and_no_baseline_comparable(run, request):
    work, output, _, page = request.getfixturevalue(run)
    html = (work / page).read_text()
    assert "Dataset readiness" in output and re.search(r"\b(PASS|WARN|FAIL)\b", html)
    assert "bug in usseg" not in output
    # config.yaml's published results (the article's, on the Kaggle data) are never comparable here.
    baselines = pd.read_csv(work / "results/diagnostics/baselines.csv", keep_default_na=False)
    assert len(baselines) and set(baselines["comparable"].astype(str)) == {"False"}
    assert _checks(work)["published_baselines"]["status"] != "PASS"
    # Every input file is a manifest image or mask, an issues row, or both.
    manifest = pd.read_csv(work / "results/manifest.csv", keep_default_na=False)
    issues = pd.read_csv(work / "results/manifest_issues.csv", keep_default_na=False)
    listed = set(manifest["image_path"]) | set(manifest["mask_path"]) | set(issues["path"])
    assert _dataset_files(work) <= listed | {""}


def test_the_flat_layout_draws_whole_subjects_as_its_test_set(flat_run):
    work, _, _, _ = flat_run
    splits = pd.read_csv(work / "results/splits.csv", keep_default_na=False)
    assert set(splits["split"]) >= {"train", "val", "test_ultrasound_study"}
    assert (splits.groupby("subject_id")["split"].nunique() == 1).all()
    decode = pd.read_csv(work / "results/labels/decode_report.csv", keep_default_na=False)
    assert set(decode["encoding"]) == {"index"}


def test_odd_inputs_are_read_counted_or_set_aside_never_a_bug(renamed_run):
    work, output, planted, _ = renamed_run
    manifest = pd.read_csv(work / "results/manifest.csv", keep_default_na=False).set_index("image_path")
    issues = pd.read_csv(work / "results/manifest_issues.csv", keep_default_na=False).set_index("path")
    # The Latin-1 name is listed escaped, read and labeled.
    latin1 = manifest.loc[next(iter(planted))]
    assert (work / "results/labels" / f"{latin1['image_id']}.npy").is_file()
    # The long name has a short id and a label file.
    long_row = manifest.loc[f"sim/images/train/{LONG_STEM}.png"]
    assert len(long_row["image_id"]) <= 120 and (work / "results/labels" / f"{long_row['image_id']}.npy").is_file()
    # The truncated test JPEG is set aside, and counted as left out of test_clinic with its lost subject.
    assert issues.loc["clinic/images/test/p8-1.jpg", "reason"] == "unreadable_image"
    summary = json.loads((work / "results/experiments/multiorgan_unet/eval/test_clinic/summary.json").read_text())
    assert [e["image_id"] for e in summary["excluded"]] == ["clinic_test_p8-1"]
    assert summary["excluded_subjects"] == ["p8"]
    html = (work / "results/report/report.html").read_text()
    assert "subjects lost" in html
    # 16-bit images: one depth for the dataset, inferred and said.
    reading = json.loads((work / "results/dataset_root.json").read_text())["reading"]
    assert reading["bit_depth"] == 12 and reading["downsampled_images"] == 1
    assert "12-bit" in _checks(work)["image_quality"]["reason"]
    # The large image is read down-sampled (sizes as read), with a warning naming it.
    assert tuple(manifest.loc["sim/images/train/s02_9.png", ["width", "height"]]) == (54, 40)
    assert "larger than dataset.max_image_side = 64" in output
    # lr: 1e-3 was read as a number, with a note saying how to write it.
    assert "'1e-3' was read as the number 0.001" in output
