"""One gap-study arm, every seed, in one process: train, then evaluate each seed (rules/gap.smk `gap_arm`).

The start-up (MONAI, torch, the data tables) is paid once per arm instead of
once per training and evaluation. Per seed offset k, `run_arm` writes the
files of usseg.gap.files.seed_files under the arm's seed folders: the training's
model.safetensors, history.csv and timing.csv, and per test set the
evaluation's numbers (per_subject.csv, per_image.csv, summary.json,
confusion.csv; no figures: the report shows the study's tables, not each
seed's overlays). The trainings
run through the training engine's `usseg.train.train_many` on the prepared
arrays of the arm's image size (read once for all seeds); each is the model the
same training gives alone, with its experiment's `threads`.

Two kinds of seed are not trained here, because the same training exists:

- `trained_in`: seed offset -> a folder whose training files are copied (the
  baseline experiment for the baseline arm's seed 0; the baseline arm's seeds
  for a prediction-only remedy such as bn_adapt, usseg.gap.trains_like_baseline);
- `evaluated_in`: seed offset -> a folder whose eval/{test_set}/ tables are
  copied (the baseline experiment's, whose evaluation is the same settings on
  the same model).

"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from usseg.contracts import EvaluationOutputs, TrainingOutputs
from usseg.data import PreparedData
from usseg.experiment import Experiment
from usseg.gap.files import ARM_TRAINING_FILES, EVAL_FILES, eval_dir

log = logging.getLogger("usseg.gap.arms")


def seed_experiment(exp: Experiment, offset: int) -> Experiment:
    """The arm's training with seed offset k: the experiment's seed + k."""
    return exp.with_settings(seed=exp.seed + int(offset), name=f"{exp.name}_seed{int(offset)}")


def evaluate_seed(exp: Experiment, prepared: PreparedData, seed_folder, test_sets: Sequence[str],
                  evaluation: Mapping, all_test_sets: Sequence[str]) -> None:
    """The seed's model scored on each of `test_sets`: the evaluation's numbers, no figures."""
    from usseg.evaluate import evaluate_experiment  # late: torch and MONAI

    for test_set in test_sets:
        evaluate_experiment(exp, prepared, TrainingOutputs.in_folder(seed_folder).model, test_set,
                            EvaluationOutputs.in_folder(eval_dir(seed_folder, test_set)), evaluation=dict(evaluation),
                            test_sets=list(all_test_sets), figures=False)


def _copy(files: Sequence[str], source, target) -> None:
    Path(target).mkdir(parents=True, exist_ok=True)
    for name in files:
        if not (Path(source) / name).exists():
            raise FileNotFoundError(f"{Path(source) / name} is missing: the gap study reuses it; re-run its step.")
        shutil.copyfile(Path(source) / name, Path(target) / name)


def run_arm(exp: Experiment, prepared: PreparedData, seed_folders: Sequence[str], checkpoint_dirs: Sequence[str],
            test_sets: Sequence[str], evaluation: Mapping, all_test_sets: Sequence[str], *,
            trained_in: Mapping[int, str] | None = None, evaluated_in: Mapping[int, str] | None = None) -> None:
    """Every seed of one arm: seed_folders[k] gets seed offset k's training and evaluation tables.

    exp: the arm's settings at the experiment's own seed (usseg.gap.study.arm_experiment); offset k trains
    seed_experiment(exp, k). test_sets: the arm's test sets; all_test_sets: every test set
    of the run (the foreground mean's classes are those scored on all of them).
    """
    from usseg.train import TrainingRun, train_many  # late: torch and MONAI

    trained_in, evaluated_in = dict(trained_in or {}), dict(evaluated_in or {})
    offsets = range(len(seed_folders))
    # CPU seconds (every thread of this process) before any work: the job's start-up (imports, tables).
    start_cpu = time.process_time()
    for k, source in trained_in.items():
        _copy(ARM_TRAINING_FILES, source, seed_folders[k])
        log.info("%s seed offset %d: the same training as %s, copied", exp.name, k, source)
    trainings = [TrainingRun(seed_experiment(exp, k), prepared, TrainingOutputs.in_folder(seed_folders[k]),
                             Path(checkpoint_dirs[k]))
                 for k in offsets if k not in trained_in]
    train_many(trainings)
    train_cpu = time.process_time()
    evaluated = 0
    for k in offsets:
        if k in evaluated_in:
            for test_set in test_sets:
                _copy(EVAL_FILES, eval_dir(evaluated_in[k], test_set), eval_dir(seed_folders[k], test_set))
            log.info("%s seed offset %d: the evaluation of %s (same model and settings), copied",
                     exp.name, k, evaluated_in[k])
        else:
            evaluate_seed(seed_experiment(exp, k), prepared, seed_folders[k], test_sets, evaluation, all_test_sets)
            evaluated += len(test_sets)
    # What the arm cost, for sizing the study (benchmarks/gap_arm_costs.py reads this line).
    log.info("arm cost: %s, %d training(s) %.1f CPU s, %d evaluation(s) %.1f CPU s, start-up %.1f CPU s",
             exp.name, len(trainings), train_cpu - start_cpu, evaluated, time.process_time() - train_cpu, start_cpu)
