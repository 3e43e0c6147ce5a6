"""Config variants through Snakemake itself: what a run resolves, not what a YAML file says."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_snakemake, tiny_config
from dry_run import QUIET_KEEPS_JOBS, parse_dry_run
from usseg.experiment import resolve_experiment

pytestmark = pytest.mark.e2e

ARTICLE = REPO / "configs" / "article.yaml"
# The article's four experiments: exactly the overlay's, none of config.yaml's (its remedies are arms of the
# gap study, gap_study.remedies, not experiments).
ARTICLE_EXPERIMENTS = set(yaml.safe_load(ARTICLE.read_text())["experiments"])
assert {"liver_unet", "multiorgan_unet", "multiorgan_unet_weighted", "liver_rf"} == ARTICLE_EXPERIMENTS


def resolved(workdir: Path, *args: str, configfile: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    run_snakemake(workdir, "--cores", "1", "results/config.yaml", *args, configfile=configfile)
    return yaml.safe_load((workdir / "results" / "config.yaml").read_text())


def test_the_article_config_resolves_to_the_article_experiments_only(tmp_path):
    config = resolved(tmp_path, configfile=ARTICLE)
    assert set(config["experiments"]) == ARTICLE_EXPERIMENTS
    liver = resolve_experiment(config, "liver_unet")
    # config.yaml's liver_unet keeps only the largest component; the article's does not.
    assert liver["postprocess"]["largest_component"] is False
    assert liver["image_size"] == [256, 256] and liver["epochs"] == 50
    assert liver["optimizer"]["lr"] == pytest.approx(1e-4)
    assert config["demo"]["size"] == "full"


def test_a_variant_config_resolves_to_its_own_experiments_only(tmp_path):
    tiny = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    proc = run_snakemake(tmp_path, "--dry-run", *QUIET_KEEPS_JOBS, "report")
    jobs = parse_dry_run(proc.stdout + proc.stderr)
    trained = {j["wildcards"]["experiment"] for j in jobs if j["rule"] == "train"}
    assert trained == set(tiny["experiments"])
    assert "multiorgan_unet" not in trained  # in config.yaml, not in the tiny variant


def test_nested_and_null_command_line_values_work(tmp_path):
    config = resolved(
        tmp_path, "--config", "experiment_defaults={epochs: 4, image_size: [64, 64]}", "data_root=null",
        "split={seed: 7}", configfile=REPO / "configs" / "tiny.yaml",
    )
    assert config["experiment_defaults"]["epochs"] == 4
    assert config["experiment_defaults"]["image_size"] == [64, 64]
    assert config["experiment_defaults"]["model"]["channels"] == [4, 8, 16]  # merged, not replaced
    assert config["split"] == {"val_fraction": 0.25, "test_fraction": 0.2, "seed": 7}
    assert config["data_root"] is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("split={seed: -1}", "split.seed: -1 is less than the minimum of 0"),
        ("experiment_defaults={optimizer: {lr: .inf}}", "experiment_defaults.optimizer.lr = inf is not a finite"),
    ],
)
def test_bad_numbers_stop_the_run_at_start_up(tmp_path, override, message):
    proc = run_snakemake(tmp_path, "--dry-run", "report", "--config", override, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_an_empty_data_root_stops_the_run_instead_of_running_the_demo(tmp_path):
    # `--config data_root=$DATA` with DATA unset: Snakemake hands the workflow null.
    proc = run_snakemake(tmp_path, "--dry-run", "report", "--config", "data_root=", check=False)
    assert proc.returncode != 0
    assert "data_root= gives data_root no value" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_the_same_settings_resolve_the_same_whatever_the_overlay_holds(tmp_path):
    # Params are compared by their text, key order included: the tiny overlay and
    # the whole tiny configuration written out must give the same params.
    whole = tmp_path / "whole.yaml"
    whole.write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    small = resolved(tmp_path / "small", configfile=REPO / "configs" / "tiny.yaml")
    large = resolved(tmp_path / "large", configfile=whole)
    assert (tmp_path / "small/results/config.yaml").read_text() == (tmp_path / "large/results/config.yaml").read_text()
    assert small == large
