"""End to end: the real workflow on configs/tiny.yaml honours the file contracts of docs/contracts.md."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_snakemake, tiny_config

pytestmark = pytest.mark.e2e

TINY = tiny_config()
EXPERIMENTS = list(TINY["experiments"])
TEST_SETS = TINY["test_sets"]
MANIFEST_COLUMNS = [
    "image_id", "subject_id", "modality", "orig_split", "image_path", "mask_path",
    "has_mask", "width", "height", "sha256",
]
CHECK_IDS = [
    "composition", "subjects", "class_balance", "domain_shift",
    "label_verification", "leakage", "published_baselines",
]


def test_demo_data_has_the_reference_layout(tiny_run):
    root = tiny_run / "data" / "demo" / "abdominal_US"
    for folder in ("AUS/images/train", "AUS/images/test", "AUS/annotations/train", "AUS/annotations/test",
                   "RUS/images/train", "RUS/images/test", "RUS/annotations/test"):
        assert any((root / folder).iterdir()), folder
    assert all(re.match(r"^ct\d+-\d+\.png$", p.name) for p in (root / "AUS/images/train").iterdir())
    assert all(re.match(r"^[a-z]+\d+\.jpg$", p.name) for p in (root / "RUS/images/test").iterdir())


def test_manifest_accounts_for_every_file(tiny_run):
    manifest = pd.read_csv(tiny_run / "results/manifest.csv", keep_default_na=False)
    issues = pd.read_csv(tiny_run / "results/manifest_issues.csv", keep_default_na=False)
    assert set(MANIFEST_COLUMNS) <= set(manifest.columns)
    assert manifest["image_id"].is_unique
    assert set(manifest["modality"]) == {"AUS", "RUS"}
    root = tiny_run / "data" / "demo" / "abdominal_US"
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    accounted = set(manifest["image_path"]) | set(manifest.loc[manifest["mask_path"] != "", "mask_path"]) | set(
        issues["path"]
    )
    assert files == accounted
    # The demo has one orphan real annotation, as the reference does.
    assert (issues["reason"] == "orphan_annotation").sum() == 1


def test_label_cache_matches_images(tiny_run):
    manifest = pd.read_csv(tiny_run / "results/manifest.csv", keep_default_na=False)
    labeled = manifest[manifest["has_mask"].astype(str).str.lower() == "true"]
    assert len(labeled) > 0
    n_classes = len(TINY["dataset"]["classes"])
    for row in labeled.itertuples():
        labels = np.load(tiny_run / "results/labels" / f"{row.image_id}.npy")
        assert labels.dtype == np.uint8
        assert labels.shape == (row.height, row.width)
        assert labels.max() < n_classes
    report = pd.read_csv(tiny_run / "results/labels/decode_report.csv")
    assert set(report["image_id"]) == set(labeled["image_id"])


def test_splits_are_subject_grouped(tiny_run):
    splits = pd.read_csv(tiny_run / "results/splits.csv", keep_default_na=False)
    assert set(splits["split"]) <= {"train", "val", "test_aus", "test_rus", "unlabeled"}
    assert {"train", "val", "test_aus", "test_rus"} <= set(splits["split"])
    used = splits[splits["split"] != "unlabeled"]
    assert (used.groupby("subject_id")["split"].nunique() == 1).all()
    # 4 labeled real subjects, as in the reference dataset.
    assert used.loc[used["split"] == "test_rus", "subject_id"].nunique() == 4


def test_diagnostics_checklist_contract(tiny_run):
    checklist = json.loads((tiny_run / "results/diagnostics/checklist.json").read_text())
    assert checklist["overall"] in ("PASS", "WARN", "FAIL")
    assert [c["id"] for c in checklist["checks"]][: len(CHECK_IDS)] == CHECK_IDS
    for check in checklist["checks"]:
        assert set(check) >= {"id", "title", "status", "value", "threshold", "reason"}
        assert check["status"] in ("PASS", "WARN", "FAIL")
        assert check["reason"]
    statuses = {c["id"]: c["status"] for c in checklist["checks"]}
    # The demo reproduces the known diagnosis: too few labeled real subjects.
    assert statuses["subjects"] in ("WARN", "FAIL")
    assert (tiny_run / "results/diagnostics/checklist.md").read_text().strip()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_training_outputs(tiny_run, experiment):
    exp_dir = tiny_run / "results/experiments" / experiment
    assert (exp_dir / "model.safetensors").stat().st_size > 0
    history = pd.read_csv(exp_dir / "history.csv")
    assert len(history) >= 1 and "epoch" in history.columns
    assert (exp_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("test_set", TEST_SETS)
def test_evaluation_summary_contract(tiny_run, experiment, test_set):
    out = tiny_run / "results/experiments" / experiment / "eval" / test_set
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {
        "experiment", "test_set", "aggregation", "n_images", "n_subjects", "dice", "dice_mean_foreground",
        "mean_foreground", "ci95", "per_subject", "unstable", "per_class", "pooled_image", "excluded",
    }
    assert summary["experiment"] == experiment and summary["test_set"] == test_set
    assert summary["aggregation"] == "subject"
    assert summary["n_subjects"] == len(summary["per_subject"])
    for cls, value in summary["dice"].items():
        assert value is None or 0.0 <= value <= 1.0
        entry = summary["per_class"][cls]
        assert {"n_images", "n_subjects", "dice", "ci95", "ci_method", "estimable", "nsd", "hd95",
                "false_positive_images", "absent_images"} <= set(entry)
        assert entry["dice"] == value
        if summary["ci95"][cls] is None:  # no interval from fewer than 3 subjects, said in words
            assert not entry["estimable"] and entry["interval_note"]
        else:
            low, high = summary["ci95"][cls]
            assert entry["n_subjects"] >= 3 and low < high
            assert low <= value + 1e-9 and value <= high + 1e-9
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == summary["n_images"]
    if test_set == "test_rus":
        # Four labeled real subjects cannot give a trustworthy interval.
        assert summary["unstable"] is True
    assert not any(isinstance(v, float) and math.isnan(v) for v in summary["dice"].values())


def test_report_and_provenance(tiny_run):
    html = (tiny_run / "results/report/report.html").read_text()
    assert "<img" in html and 'src="http' not in html
    # The default report runs the pipeline checks: the verdict gives the answer, its section the evidence.
    assert 'id="pipeline-checks"' in html and "Pipeline ruled out?" in html
    assert (tiny_run / "results/sanity/label_round_trip.json").is_file() and 'id="pipeline-sanity"' in html
    prov = json.loads((tiny_run / "results/provenance/split.json").read_text())
    assert prov["rule"] == "split"
    assert prov["params"]["seed"] == TINY["split"]["seed"]
    assert all(desc["sha256"] for paths in prov["inputs"].values() for desc in paths.values())


def test_rerun_has_nothing_to_do(tiny_run):
    proc = run_snakemake(tiny_run, "-n", "report")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_missing_data_root_is_a_clear_error(tmp_path):
    proc = run_snakemake(tmp_path, "-n", "report", "--config", f"data_root={tmp_path / 'nowhere'}", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "data_root" in out and "nowhere" in out and "does not exist" in out


def test_data_root_without_modalities_is_a_clear_error(tmp_path):
    data = tmp_path / "download"
    (data / "something_else").mkdir(parents=True)
    proc = run_snakemake(tmp_path, "--cores", "1", "manifest", "--config", f"data_root={data}", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "AUS" in out and "RUS" in out and str(data) in out
    assert "bug in usseg" not in out


def test_config_mistake_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    cfg = tiny_config()
    cfg["experiments"]["liver_unet"]["classes"] = ["liverr"]
    bad.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path, "-n", "report", configfile=bad, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "experiments.liver_unet.classes" in out and "'liverr'" in out
    assert not (tmp_path / "results").exists()


def test_cuda_without_gpu_is_a_clear_error(tiny_run, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: device: cuda is valid here")
    from conftest import copy_run

    work = copy_run(tiny_run, tmp_path / "run")
    cfg = tiny_config()
    cfg["experiments"]["liver_unet"]["device"] = "cuda"
    cuda_cfg = tmp_path / "cuda.yaml"
    cuda_cfg.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(
        work, "--cores", "1", "results/experiments/liver_unet/model.safetensors", configfile=cuda_cfg, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "cuda" in out.lower() and "liver_unet" in out and "device" in out
    assert "bug in usseg" not in out
