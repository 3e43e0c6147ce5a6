"""Which code an experiment's jobs can run: its trainer and its remedy families.

The trainers (`TRAINERS`) and the remedy modules (usseg.remedies.spec.IMPLEMENTATIONS)
are loaded by name, never by an import statement, so the code a script runs
by its imports (usseg.code_deps) is what every experiment shares; an
experiment adds its own trainer and families (`experiment_modules`). The same
list makes the rules' code inputs (rules/common.smk, `experiment_code`) and the
training fingerprint (usseg.training.job.training_code_digest): editing the
forest's trainer re-runs no network training, editing an augmentation re-runs
only the experiments that use it, and a diagnostics module none.

Standard library and the config layer only: the rules import this at every start-up.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from usseg.code_deps import SRC_ROOT, module_code_files
from usseg.experiment import Experiment
from usseg.remedies import spec

# The module holding each trainer's `train(job)`.
TRAINERS = {
    "network": "usseg.training.loop",
    "forest": "usseg.training.forest",
    "semi": "usseg.training.semi",  # pseudo_label and mean_teacher
}
SEMI_SUPERVISED = ("pseudo_label", "mean_teacher")


def trainer_kind(exp: Experiment) -> str:
    """network, forest or semi (a network trained with a semi-supervised remedy)."""
    if exp.is_forest:
        return "forest"
    return "semi" if exp.remedy.name in SEMI_SUPERVISED else "network"


def trainer(exp: Experiment) -> ModuleType:
    """The module that trains `exp` (see TRAINERS)."""
    return importlib.import_module(TRAINERS[trainer_kind(exp)])


def remedy_modules(exp: Experiment) -> tuple[str, ...]:
    """The remedy modules the experiment's remedy and augmentation extras load (usseg.remedies.spec)."""
    return spec.implementation_modules(exp.settings.get("remedy"), exp.settings.get("augmentation"))


def experiment_modules(exp: Experiment) -> tuple[str, ...]:
    """Its trainer and its remedy modules: what the experiment's jobs load by name."""
    return (TRAINERS[trainer_kind(exp)], *remedy_modules(exp))


def experiment_code_files(exp: Experiment, package_dir: str | Path = SRC_ROOT) -> list[Path]:
    """Every usseg file `experiment_modules` run (each with its own imports), sorted."""
    files: set[Path] = set()
    for module in experiment_modules(exp):
        files.update(module_code_files(module, package_dir))
    return sorted(files)
