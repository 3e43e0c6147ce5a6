"""An nnU-Net v2 reference run on an export of `usseg.checks.nnunet_export`, through nnU-Net's Python API.

`run_reference` plans and preprocesses the exported dataset (2D configuration,
with nnU-Net's own integrity check), trains fold 0 (usseg's train/val split,
from the export's splits_final.json) for a short schedule, and predicts each
test set's images into PNG label maps. `evaluate_predictions` scores them
with usseg's own evaluation (usseg.evaluate), exactly as a usseg experiment.

Choices forced by nnU-Net on a CPU build of PyTorch (measured with nnunetv2 2.8.1):
- No torchvision: nnU-Net's lookup of a trainer *by name* imports every trainer
  module, and its Primus trainers import timm, hence torchvision. So the short
  trainer is a class made here and handed over directly, and prediction is
  initialised from the trained network (`manual_initialization`), never by
  name; nnU-Net's default trainer class is the base, unchanged.
- The schedule (epochs, iterations per epoch, validation iterations) comes
  from config (`nnunet:`); nnU-Net's default, 1,000 epochs of 250 iterations,
  takes days on a CPU. A short run is a sanity reference, not nnU-Net's result.
- nnU-Net's data augmentation runs in the calling process
  (nnUNet_n_proc_DA=0) and images are predicted one at a time, so no worker
  process has to re-import the caller. Planning and preprocessing still start
  worker processes ("spawn"): a script that calls `run_reference` must guard
  its body with `if __name__ == "__main__":`.
- nnU-Net's environment variables (nnUNet_raw, nnUNet_preprocessed,
  nnUNet_results) are set for the call only and restored afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from usseg.checks.nnunet_export import CHANNEL_SUFFIX, FILE_ENDING

log = logging.getLogger("usseg.checks.nnunet_reference")

CONFIGURATION = "2d"
FOLD = 0
PLANS = "nnUNetPlans"


@contextlib.contextmanager
def environment(**values):
    """os.environ[k] = v for the duration, restored afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def short_trainer(epochs: int, iterations: int, val_iterations: int):
    """A subclass of nnU-Net's default trainer with the given schedule (everything else unchanged)."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    class nnUNetTrainer_usseg(nnUNetTrainer):
        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = torch.device("cuda")):  # noqa: B008 (nnU-Net's signature)
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_epochs = int(epochs)
            self.num_iterations_per_epoch = int(iterations)
            self.num_val_iterations_per_epoch = int(val_iterations)

    return nnUNetTrainer_usseg


class _PhaseClock:
    """Wall and CPU seconds of this process per phase (the spawned preprocessing workers are not counted)."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str):
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        self.wall[f"{name}_s"] = time.perf_counter() - t0
        self.cpu[f"{name}_cpu_s"] = time.process_time() - c0


def run_reference(raw_root, dataset_folder: str, dataset_id: int, nnunet_cfg: dict, test_sets, work_dir,
                  predictions_dir, device: str = "auto") -> dict:
    """Plan, preprocess, train fold 0 and predict every test set; return timings and the plan's network size."""
    import torch

    _import_libraries()
    work_dir, predictions_dir = Path(work_dir), Path(predictions_dir)
    seed = int(nnunet_cfg.get("seed", 0))  # a schedule given without one (tests) runs with nnunet.seed's default
    raw_dataset = Path(raw_root) / dataset_folder
    if not (raw_dataset / "splits_final.json").is_file():
        raise FileNotFoundError(f"{raw_dataset}/splits_final.json missing; run the nnunet_export step first.")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    # nnunet.threads, not the job's share of the cores: the thread count changes a CPU's numbers.
    torch.set_num_threads(int(nnunet_cfg.get("threads", 1)))
    clock = _PhaseClock()
    folders = {
        "nnUNet_raw": str(Path(raw_root).resolve()),
        "nnUNet_preprocessed": str((work_dir / "preprocessed").resolve()),
        "nnUNet_results": str((work_dir / "results").resolve()),
        "nnUNet_compile": "f",  # torch.compile costs minutes on a CPU and changes nothing here
    }
    if work_dir.exists():
        shutil.rmtree(work_dir)  # a fresh plan and training every run, nothing resumed by accident
    with environment(**folders):
        with clock.phase("plan_and_preprocess"):
            plan_and_preprocess(int(dataset_id))
        pre = work_dir / "preprocessed" / dataset_folder
        check_split_kept(pre, raw_dataset)
        plans, dataset_json = load_plans(pre)
        trainer_class = short_trainer(nnunet_cfg["epochs"], nnunet_cfg["iterations_per_epoch"],
                                      nnunet_cfg["val_iterations_per_epoch"])
        with clock.phase("train"):
            trainer = train_fold(trainer_class, plans, dataset_json, seed, dev)
        mirroring = bool(nnunet_cfg.get("test_time_mirroring", True))
        predictor = trained_predictor(trainer, trainer_class, dataset_json, mirroring, dev)
        with clock.phase("predict"):
            counts = {t: predict_folder(predictor, raw_dataset / "imagesTs" / t, predictions_dir / t)
                      for t in test_sets}
    return _run_info(dev, seed, nnunet_cfg, trainer, counts, clock)


def _import_libraries() -> None:
    """Imports the nnU-Net and MONAI modules the phases use before any phase's clock starts: import time
    belongs to no phase."""
    for name in (
        "batchgenerators.utilities.file_and_folder_operations",
        "monai.utils",
        "nnunetv2.experiment_planning.plan_and_preprocess_api",
        "nnunetv2.imageio.natural_image_reader_writer",
        "nnunetv2.inference.predict_from_raw_data",
    ):
        importlib.import_module(name)


def plan_and_preprocess(dataset_id: int) -> None:
    """nnU-Net's fingerprint (with its integrity check), plans and 2D preprocessing, one process each."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )

    extract_fingerprints([dataset_id], num_processes=1, check_dataset_integrity=True, verbose=False,
                         show_progress_bar=False)
    plan_experiments([dataset_id])
    preprocess([dataset_id], PLANS, configurations=(CONFIGURATION,), num_processes=(1,),
               show_progress_bar=False)


def check_split_kept(pre: Path, raw_dataset: Path) -> None:
    """nnU-Net's planner copies the raw folder's splits_final.json; make sure it trains on usseg's split."""
    if json.loads((pre / "splits_final.json").read_text()) != json.loads(
            (raw_dataset / "splits_final.json").read_text()):
        raise RuntimeError(f"{pre}/splits_final.json is not the export's split; nnU-Net would train on another.")


def load_plans(pre: Path) -> tuple[dict, dict]:
    """nnU-Net's plans (set to start training afresh) and dataset.json of the preprocessed dataset `pre`."""
    from batchgenerators.utilities.file_and_folder_operations import load_json

    plans = load_json(str(pre / f"{PLANS}.json"))
    plans["continue_training"] = False  # what nnU-Net's own run_training adds to the plans
    return plans, load_json(str(pre / "dataset.json"))


def train_fold(trainer_class, plans: dict, dataset_json: dict, seed: int, dev):
    """Train fold 0 with every RNG seeded from `seed`; the trained trainer."""
    from monai.utils import set_determinism

    # Augmentation in this process (the planner reads the same variable as a thread count), and
    # every RNG it and the network's initialisation draw from seeded: nnU-Net seeds nothing itself, so
    # without this two runs of the same data give different references (measured: liver Dice 0.48 and
    # 0.82 on the demo's simulator test set with the 10-iteration schedule).
    set_determinism(seed=seed)  # MONAI's: Python's, NumPy's and torch's RNGs, and cuDNN's deterministic mode
    with environment(nnUNet_n_proc_DA="0"):
        trainer = trainer_class(plans, CONFIGURATION, FOLD, dataset_json, device=dev)
        trainer.run_training()
    return trainer


def trained_predictor(trainer, trainer_class, dataset_json: dict, mirroring: bool, dev):
    """An nnU-Net predictor initialised from the trained network in memory (never by trainer name)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    trainer.set_deep_supervision_enabled(False)  # prediction wants the full-resolution output only
    # Test-time mirroring (nnU-Net's default) predicts every tile 4 times in 2D.
    predictor = nnUNetPredictor(use_mirroring=mirroring, device=dev, verbose=False, allow_tqdm=False)
    predictor.manual_initialization(
        trainer.network, trainer.plans_manager, trainer.configuration_manager,
        [trainer.network.state_dict()], dataset_json, trainer_class.__name__,
        trainer.inference_allowed_mirroring_axes,
    )
    return predictor


def predict_folder(predictor, images_dir: Path, out: Path) -> int:
    """Predict every exported image of `images_dir`, one at a time, into PNG label maps in `out`; the count."""
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO

    reader = NaturalImage2DIO()
    out.mkdir(parents=True, exist_ok=True)
    images = sorted(images_dir.glob(f"*{CHANNEL_SUFFIX}{FILE_ENDING}"))
    for path in images:
        case = path.name[: -len(CHANNEL_SUFFIX + FILE_ENDING)]
        img, props = reader.read_images([str(path)])
        seg = predictor.predict_single_npy_array(img, props, None, None, False)
        Image.fromarray(np.asarray(seg)[0].astype(np.uint8), mode="L").save(out / f"{case}{FILE_ENDING}")
    return len(images)


def _run_info(dev, seed: int, nnunet_cfg: dict, trainer, counts: dict, clock: _PhaseClock) -> dict:
    """What run_reference returns (and logs): the settings, the plan's network, counts and timings."""
    n_params = sum(p.numel() for p in trainer.network.parameters())
    iterations = max(1, int(nnunet_cfg["epochs"]) * int(nnunet_cfg["iterations_per_epoch"]))
    info = {
        "device": str(dev),
        "seed": seed,
        "epochs": int(nnunet_cfg["epochs"]),
        "iterations_per_epoch": int(nnunet_cfg["iterations_per_epoch"]),
        "test_time_mirroring": bool(nnunet_cfg.get("test_time_mirroring", True)),
        "patch_size": [int(s) for s in trainer.configuration_manager.patch_size],
        "batch_size": int(trainer.configuration_manager.batch_size),
        "parameters": int(n_params),
        "predicted_images": counts,
        **{k: round(v, 1) for k, v in clock.wall.items()},
        **{k: round(v, 1) for k, v in clock.cpu.items()},
        # What one training iteration costs here (its share of the training phase, validation included):
        # to size a longer schedule (docs/benchmarks.md).
        "train_cpu_s_per_iteration": round(clock.cpu["train_cpu_s"] / iterations, 2),
    }
    log.info("nnU-Net reference: %s", info)
    return info


def is_installed() -> bool:
    """Whether nnunetv2 can be imported here (the `nnunet` extra, tools/install-nnunet.py)."""
    return importlib.util.find_spec("nnunetv2") is not None


def not_installed_note() -> str:
    """What the report says when nnunetv2 is missing, with the command that runs the reference (usseg.rerun)."""
    from usseg.rerun import command

    return ("nnU-Net reference not installed: nnunetv2 cannot be imported in this environment. `make install` "
            f"installs it (tools/install-nnunet.py); then re-run `{command('report')}`.")


def reference_runs(nnunet_cfg: dict) -> bool:
    """Whether the report runs the reference: switched on (`nnunet.enabled`) and nnunetv2 installed."""
    return bool(nnunet_cfg.get("enabled", True)) and is_installed()


def reference_experiment(experiment_defaults: dict):
    """The experiment evaluation reads for the nnU-Net reference: experiment_defaults with every palette
    class, no remedy and no post-processing, named and modelled "nnunet".

    Its image_size only sizes evaluation's preprocessing, which nnU-Net's
    full-resolution predictions do not go through.
    """
    from usseg.experiment import Experiment

    return Experiment({**experiment_defaults, "name": "nnunet", "model": {"name": "nnunet"}, "classes": "all",
                       "remedy": {"name": "none"}, "postprocess": {"largest_component": False}})


def evaluate_predictions(predictions_dir, test_set: str, prepared, outputs, *, evaluation: dict, test_sets,
                         experiment_defaults: dict) -> dict:
    """Score nnU-Net's predictions of `test_set` on the prepared data (usseg.data.PreparedData) with usseg's
    own evaluation (usseg.evaluate).

    The same subjects, label maps, metrics, intervals and outputs as a usseg
    experiment's evaluation, written to `outputs` (usseg.contracts.EvaluationOutputs); summary.json has
    `experiment` and `model` "nnunet".
    """
    from usseg.evaluate import FilesPredictor, evaluate_experiment

    exp = reference_experiment(experiment_defaults)
    predictor = FilesPredictor(Path(predictions_dir) / test_set, prepared.dataset.class_names, exp.image_size)
    return evaluate_experiment(exp, prepared, None, test_set, outputs, evaluation=evaluation, test_sets=test_sets,
                               predictor=predictor)
