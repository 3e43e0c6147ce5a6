"""Reproducible: two complete runs from scratch with the same config give the same results.

The second run is compared with the shared tiny run (tiny_run): on CPU every
result file is byte-identical (the demo dataset, manifest, labels, splits,
diagnostics, models, histories, evaluations, provenance records), so results
can be compared by hash. Clock times live in files of their own, which are the
only ones left out: logs, Snakemake's benchmark files, timing.csv, the report
page that shows them, and the training checkpoints (state for resuming, with
the seconds of each epoch; not a result). The nnU-Net reference's run is also
left out (NOT_OURS): nnU-Net seeds nothing and records its own clock times,
so its training and predictions differ from run to run; its export does not
and is compared.
"""

from __future__ import annotations

import csv
import json
from fnmatch import fnmatch
from pathlib import Path

import pytest

from conftest import run_snakemake, sibling_copy, tree_digests

pytestmark = pytest.mark.e2e

# history.csv columns that measure the machine, not the model (none: they are in timing.csv).
TIMING_COLUMNS = {"seconds"}
# Files that hold clock times, relative to the run folder (fnmatch patterns).
TIMING_FILES = [
    "results/logs/*",
    "results/benchmarks/*",
    "results/experiments/*/timing.csv",
    "results/report/report.html",
    # The report's record hashes every file the page showed (the run state checks them), timing.csv
    # files and the page itself included.
    "results/provenance/report.json",
    "results/checkpoints/*",
]
# The third-party nnU-Net reference run: unseeded training, timings in reference.json.
NOT_OURS = [
    "results/nnunet/work/*",
    "results/nnunet/reference.json",
    "results/nnunet/predictions/*",
    "results/nnunet/eval/*",
    "results/provenance/nnunet_train_predict*",
    "results/provenance/nnunet_evaluate*",
]


def history_without_timing(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, f"{path} has no epochs"
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def metric_values(summary: dict) -> dict:
    return {
        k: summary[k]
        for k in ("n_images", "n_subjects", "dice", "dice_mean_foreground", "per_subject", "ci95")
    }


@pytest.fixture(scope="module")
def second_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("tiny_run_again")
    # Under --cores 8 (the tiny run has 2): every result must still be the same, byte for byte.
    run_snakemake(workdir, "--cores", "8", "report")
    return workdir


@pytest.mark.parametrize(
    "sub",
    [
        "data/demo/abdominal_US",
        "results/manifest.csv",
        "results/manifest_issues.csv",
        "results/labels",
        "results/splits.csv",
    ],
)
def test_data_files_are_byte_identical(tiny_run, second_run, sub):
    first, second = tree_digests(tiny_run, sub), tree_digests(second_run, sub)
    assert first.keys() == second.keys(), (
        f"different files under {sub}: {sorted(first.keys() ^ second.keys())}"
    )
    differing = sorted(k for k in first if first[k] != second[k])
    assert not differing, f"files differ between two runs of the same config: {differing}"


def _what_differs(a: Path, b: Path) -> str:
    """For a failure message: which tensors or metadata keys, or which JSON keys, differ."""
    if a.suffix == ".safetensors":
        from usseg.checkpoint import load_tensors

        (ta, ma), (tb, mb) = load_tensors(a, verify=False), load_tensors(b, verify=False)
        tensors = sorted(k for k in ta.keys() | tb.keys() if k not in ta or k not in tb or not ta[k].equal(tb[k]))
        meta = sorted(k for k in ma.keys() | mb.keys() if ma.get(k) != mb.get(k))
        return f"{a.name}: tensors {tensors[:5]} ({len(tensors)}), metadata {meta}"
    if a.suffix == ".json":
        ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
        return f"{a}: keys {sorted(k for k in ja.keys() | jb.keys() if ja.get(k) != jb.get(k))}"
    return str(a)


def result_digests(run: Path) -> dict[str, str]:
    digests = {**tree_digests(run, "results"), **tree_digests(run, "data")}
    return {k: v for k, v in digests.items() if not any(fnmatch(k, pat) for pat in TIMING_FILES + NOT_OURS)}


def test_every_result_is_byte_identical_except_timing_files(tiny_run, second_run):
    first, second = result_digests(tiny_run), result_digests(second_run)
    assert first.keys() == second.keys(), f"different files: {sorted(first.keys() ^ second.keys())}"
    differing = sorted(k for k in first if first[k] != second[k])
    assert not differing, (
        f"files differ between two runs of the same config: {differing}\n"
        + "\n".join(_what_differs(tiny_run / k, second_run / k) for k in differing)
    )
    assert any(k.endswith("model.safetensors") for k in first)
    assert any(k.endswith("history.csv") for k in first)
    assert any(k.startswith("results/provenance/") for k in first)
    timing = [p for p in (tiny_run / "results" / "experiments").glob("*/timing.csv")]
    assert timing and all("seconds" in p.read_text() for p in timing)


def test_metrics_and_histories_are_identical_on_cpu(tiny_run, second_run):
    summaries = sorted(
        p.relative_to(tiny_run)
        for p in (tiny_run / "results" / "experiments").glob("*/eval/*/summary.json")
    )
    histories = sorted(
        p.relative_to(tiny_run)
        for p in (tiny_run / "results" / "experiments").glob("*/history.csv")
    )
    assert summaries and histories
    for rel in summaries:
        first = json.loads((tiny_run / rel).read_text())
        second = json.loads((second_run / rel).read_text())
        assert metric_values(first) == metric_values(second), f"{rel} differs between two runs"
    for rel in histories:
        assert history_without_timing(tiny_run / rel) == history_without_timing(second_run / rel), (
            f"{rel} differs between two runs"
        )
    assert (
        sorted(
            p.relative_to(second_run)
            for p in (second_run / "results" / "experiments").glob("*/eval/*/summary.json")
        )
        == summaries
    )


@pytest.mark.parametrize("cores", ["1"])  # --cores 8: the whole second run above
def test_the_cores_given_change_no_model_or_number(tiny_run, tmp_path_factory, cores):
    """A training computes with its experiment's `threads` setting, never with a share of --cores: the
    same experiment retrained under --cores 1 or 8 (on any machine: on 2 CPUs --cores 8 runs at most
    two jobs at once) gives the tiny run's (--cores 2) model, history and evaluation byte for byte."""
    run = sibling_copy(tiny_run, tmp_path_factory, f"cores{cores}")
    exp = "multiorgan_unet_weighted"
    outputs = [f"results/experiments/{exp}/model.safetensors", f"results/experiments/{exp}/history.csv",
               f"results/experiments/{exp}/eval/test_rus/summary.json"]
    before = {p: (run / p).stat().st_mtime_ns for p in outputs}
    run_snakemake(run, "--cores", cores, "--forcerun", "train", "--", outputs[-1])
    for p in outputs:
        assert (run / p).stat().st_mtime_ns != before[p], f"{p} was not made again"
        assert (run / p).read_bytes() == (tiny_run / p).read_bytes(), f"{p} differs under --cores {cores}"
