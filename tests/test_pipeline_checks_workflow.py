"""The pipeline-check targets on the tiny run: sanity_checks, nnunet_export and nnunet_reference."""

from __future__ import annotations

import importlib.util
import json
import re

import pandas as pd
import pytest

from conftest import run_snakemake, sibling_copy, tiny_config
from usseg.checks.pipeline import sanity_experiments

pytestmark = pytest.mark.e2e

# config.yaml with the tiny overlay, as the workflow resolves it.
CONFIG = tiny_config()
NETWORK_EXPERIMENTS = sanity_experiments(CONFIG)


def nnunet_installed() -> bool:
    return importlib.util.find_spec("nnunetv2") is not None


@pytest.fixture(scope="module")
def checked(tiny_run, tmp_path_factory):
    run = sibling_copy(tiny_run, tmp_path_factory, "checks")
    # The tiny config leaves the reference out of the report; here the report runs it.
    proc = run_snakemake(run, "--cores", "2", "sanity_checks", "nnunet_export", "report",
                         "--config", "nnunet={enabled: true}")
    (run / "console-stderr.txt").write_text(proc.stderr)
    return run


def test_nnunet_s_own_output_stays_in_its_log(checked):
    """nnU-Net prints its progress ("Yayy! New best EMA pseudo Dice", file copies, its plans): all of it
    goes to the job's log, none to the console (tests/console_lines.py)."""
    from console_lines import foreign_lines

    foreign = foreign_lines((checked / "console-stderr.txt").read_text())
    assert not foreign, "\n".join(foreign[:40])
    if nnunet_installed():
        log = (checked / "results" / "logs" / "nnunet_train_predict.log").read_text()
        assert "usseg.rule.nnunet_train_predict" in log and len(log.splitlines()) > 5


def test_sanity_json_per_network_experiment(checked):
    files = sorted(p.stem for p in (checked / "results" / "sanity").glob("*.json"))
    assert files == sorted([*NETWORK_EXPERIMENTS, "label_round_trip"])
    for name in NETWORK_EXPERIMENTS:
        result = json.loads((checked / "results" / "sanity" / f"{name}.json").read_text())
        assert result["experiment"] == name and result["status"] in ("PASS", "FAIL")
        for check in ("overfit", "shuffled_label"):
            assert result[check]["status"] in ("PASS", "FAIL") and result[check]["message"]
    round_trip = json.loads((checked / "results" / "sanity" / "label_round_trip.json").read_text())
    assert round_trip["status"] == "PASS" and round_trip["images"] > 0


def test_nnunet_export_carries_the_split(checked):
    # Besides the dataset folder, Snakemake's timestamp marker of a directory output.
    (folder,) = [p for p in (checked / "results" / "nnunet" / "nnUNet_raw").iterdir() if p.is_dir()]
    assert folder.name == "Dataset501_usseg"
    (fold,) = json.loads((folder / "splits_final.json").read_text())
    splits = pd.read_csv(checked / "results" / "splits.csv", dtype=str, keep_default_na=False)
    subject = dict(zip(splits["image_id"], splits["subject_id"]))
    assert fold["train"] and fold["val"]
    assert not {subject[c] for c in fold["train"]} & {subject[c] for c in fold["val"]}
    for test_set in CONFIG["test_sets"]:
        assert any((folder / "imagesTs" / test_set).glob("*_0000.png"))


def test_nnunet_reference_is_scored_on_every_test_set(checked):
    if not nnunet_installed():
        pytest.skip("nnunetv2 is not installed (the nnunet extra)")
    info = json.loads((checked / "results" / "nnunet" / "reference.json").read_text())
    assert info["epochs"] == 1 and info["iterations_per_epoch"] == CONFIG["nnunet"]["iterations_per_epoch"]
    for test_set in CONFIG["test_sets"]:
        summary = json.loads((checked / "results" / "nnunet" / "eval" / test_set / "summary.json").read_text())
        assert summary["test_set"] == test_set and summary["n_images"] == info["predicted_images"][test_set]
        assert summary["n_subjects"] > 0 and set(summary["dice"]) == set(summary["ci95"])
        # usseg's own evaluation: the same contract as an experiment's summary.json.
        assert summary["model"] == "nnunet" and "per_class" in summary and "mean_foreground" in summary


def test_report_sets_usseg_beside_the_nnunet_reference(checked):
    if not nnunet_installed():
        pytest.skip("nnunetv2 is not installed (the nnunet extra)")
    html = (checked / "results" / "report" / "report.html").read_text()
    assert 'id="pipeline-comparison"' in html
    table = html[html.index('id="pipeline-comparison"'):]
    table = table[:table.index("</table>")]
    for experiment in NETWORK_EXPERIMENTS:  # each named, its config key beside the name when they differ
        assert re.search(rf"<tr><td>[^<]*(<code class=\"key\">)?{experiment}\b", table), experiment
