"""Where the gap study's arms keep their files: the one owner of that layout (docs/contracts.md).

Per arm and seed offset k, results/gap/arms/{arm}/seed{k}/ holds the training's
files (ARM_TRAINING_FILES) and, per test set, eval/{test_set}/ the evaluation's tables
(EVAL_FILES). The rules (rules/gap.smk), the arm runner (usseg.gap.arms) and the
study's tables (usseg.gap.study) all build these paths here (the file names from usseg.contracts),
without the statistics, so editing them does not make the trainings stale.
"""

from __future__ import annotations

from collections.abc import Sequence

from usseg.contracts import EVALUATION_FILES, TRAINING_FILES

# Every file a training writes (model, tables and curves.png): declared, so that no arm leaves an undeclared
# file behind, and copied whole where an arm reuses a training.
ARM_TRAINING_FILES = tuple(TRAINING_FILES.values())
# The evaluation's numbers (usseg.evaluate with figures=False): its tables and the confusion counts.
EVAL_FILES = tuple(EVALUATION_FILES[name] for name in ("per_subject", "per_image", "summary", "confusion"))


def seed_dir(arm_dir, offset: int) -> str:
    """An arm's folder of seed offset k (the experiment's seed + k)."""
    return f"{arm_dir}/seed{int(offset)}"


def eval_dir(seed_folder, test_set: str) -> str:
    """A seed's evaluation tables on one test set (the same layout as results/experiments/{experiment}/)."""
    return f"{seed_folder}/eval/{test_set}"


def seed_files(arm_dir, offsets: Sequence[int], test_sets: Sequence[str]) -> list[str]:
    """Every file an arm's job writes: per seed offset the training's files and each test set's tables."""
    out = []
    for k in offsets:
        folder = seed_dir(arm_dir, k)
        out += [f"{folder}/{name}" for name in ARM_TRAINING_FILES]
        out += [f"{eval_dir(folder, t)}/{name}" for t in test_sets for name in EVAL_FILES]
    return out
