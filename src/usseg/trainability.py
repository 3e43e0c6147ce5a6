"""What this data can train, and why not: decided from the split, never assumed.

A dataset can lack labeled training images where an experiment trains (a
real-only dataset whose labels are all in its test split, or a modality with
no annotated training folder). The data checks need no training, so such a
run still writes the report with its verdict; only the jobs that train (an
experiment's training, evaluation and sanity checks, the nnU-Net reference,
the gap study) are left out, and the report and the closing summary say which
and why. The workflow asks `plan_of_run` after rule `split` (a Snakemake
checkpoint; rules/report.smk); the report and the closing summary ask the
same function about the same files, so all three always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from usseg import contracts
from usseg.checks.nnunet_reference import reference_runs
from usseg.experiment import Experiment
from usseg.remedies.spec import gap_baseline


@dataclass(frozen=True)
class TrainingPlan:
    """Why each part that trains cannot run on this data; a name that is absent can run."""

    untrained: dict[str, str] = field(default_factory=dict)  # experiment -> why it cannot be trained
    no_sanity: dict[str, str] = field(default_factory=dict)  # trainable network experiment -> why its checks cannot run
    nnunet: str | None = None  # why the nnU-Net reference cannot train; None: it can (or it is off)
    gap: str | None = None  # why the gap study cannot run; None: it can (or it is off)

    def trained(self, experiments) -> list[str]:
        """The experiments of `experiments` (in their order) that can be trained."""
        return [e for e in experiments if e not in self.untrained]

    def sanity(self, network_experiments) -> list[str]:
        """The network experiments whose sanity checks can run."""
        return [e for e in self.trained(network_experiments) if e not in self.no_sanity]

    def notice(self) -> str:
        """One sentence per reason, for the report and the console ("" when everything can train)."""
        by_reason: dict[str, list[str]] = {}
        for name, reason in self.untrained.items():
            by_reason.setdefault(reason, []).append(name)
        return " ".join(f"Not trained: {', '.join(names)} ({reason})." for reason, names in by_reason.items())


def _counts(manifest: pd.DataFrame, splits: pd.DataFrame) -> dict[tuple[str, str], int]:
    """(split, modality) -> number of images."""
    merged = splits[["image_id", "split"]].merge(manifest[["image_id", "modality"]], on="image_id", how="left")
    return {(str(s), str(m)): int(n) for (s, m), n in merged.groupby(["split", "modality"]).size().items()}


def _modalities(names) -> str:
    names = list(names)
    return ("modality " if len(names) == 1 else "modalities ") + ", ".join(names)


def plan_from_tables(config: dict, manifest: pd.DataFrame, splits: pd.DataFrame) -> TrainingPlan:
    """The plan of `config`'s run on this manifest and split (rule split's splits.csv)."""
    counts = _counts(manifest, splits)

    def n(split: str, modalities) -> int:
        return sum(counts.get((split, m), 0) for m in modalities)

    untrained, no_sanity = {}, {}
    for name in config["experiments"]:
        exp = Experiment.from_config(config, name)
        mods = list(exp.train_modalities)
        if n(contracts.TRAIN, mods) == 0:
            untrained[name] = f"no labeled training images in {_modalities(mods)}"
        elif exp.is_network and n(contracts.VAL, mods) == 0:
            no_sanity[name] = (f"no validation images in {_modalities(mods)}, on which the shuffled-label "
                               "control scores")
    nnunet = None
    if reference_runs(config["nnunet"]):
        mods = list(config["nnunet"]["train_modalities"])
        if n(contracts.TRAIN, mods) + n(contracts.VAL, mods) == 0:
            nnunet = f"no labeled training images in {_modalities(mods)}"
    gap = None
    if config["gap_study"]["enabled"]:
        gap = _gap_blocked(config, untrained, n)
    return TrainingPlan(untrained, no_sanity, nnunet, gap)


def _gap_blocked(config: dict, untrained: dict, n) -> str | None:
    """Why the gap study cannot run, or None: its baseline cannot be trained, or an arm known before the
    split (a remedy may train on other modalities) has no labeled training images (n(split, modalities))."""
    from usseg.gap.study import arm_experiment, fixed_arms

    baseline = gap_baseline(config)
    if baseline in untrained:
        return f"it trains {baseline}, which cannot be trained ({untrained[baseline]})"
    for arm in fixed_arms(config):
        mods = list(arm_experiment(config, arm).train_modalities)
        if n(contracts.TRAIN, mods) == 0:
            return f"it trains the arm {arm}, which cannot be trained (no labeled training images in {_modalities(mods)})"
    return None


def plan_of_run(config: dict, manifest_csv, splits_csv) -> TrainingPlan:
    """The plan of `config`'s run from its manifest.csv and splits.csv."""
    return plan_from_tables(config, contracts.read_manifest(manifest_csv), contracts.read_splits(splits_csv))
