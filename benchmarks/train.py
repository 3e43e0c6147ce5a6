"""Training throughput and the share of a step spent making batches; the demo's trainings, CPU seconds each.

Throughput (the default): for each model setting (config.yaml's defaults and
configs/article.yaml's), the real training data path over synthetic
ultrasound-like images (prepared arrays at the setting's image size, the
batch augmentation of usseg.training.batches) and the real step
(usseg.training.loop.train_step: the network, loss and optimizer of
training), timed over `--steps` steps after `--warmup`. "batch share" is the
share of step time spent making the batch (shuffling, augmentation); the rest
is the optimisation step (on CUDA synchronised so the GPU work is counted).
A multi-organ (9-class) head is used; images/s counts training images.

    .venv/bin/python benchmarks/train.py                      # CPU, both settings
    .venv/bin/python benchmarks/train.py --device cuda        # on a GPU machine

Workflow (--workflow): generate the demo dataset (default `small`), run the
manifest, decode, split and prepare-arrays steps (not counted), then train
and evaluate every experiment of --config in this one process (as
usseg.train.train_many does) and print, per experiment, the CPU seconds of
its training and of its evaluations, and the number of organs with a
subject-level Dice of at least 0.5 on each test set. The process start-up
(imports) is printed apart: a workflow job pays it once.

    .venv/bin/python benchmarks/train.py --workflow --work /tmp/usseg-train-bench [--reuse]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

START_CPU = time.process_time()

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402

from usseg.config import load_config  # noqa: E402

SETTINGS = {
    # name: (config file, source image height, width: the demo `small` / `full` sizes)
    "default": (REPO / "config.yaml", 160, 160),
    "article": (REPO / "configs" / "article.yaml", 460, 450),
}


def _load(path: Path) -> dict:
    """config.yaml, or config.yaml with a variant (configs/*.yaml) on top as the workflow reads it."""
    base = REPO / "config.yaml"
    return load_config(base) if path.resolve() == base.resolve() else load_config(base, path)


def _synthetic_arrays(n: int, h: int, w: int, size, seed: int = 0):
    """n grey images with organ-like ellipses and their palette labels, resized to `size` as prepared."""
    from usseg.prepared_arrays import ImageArrays, resize_image, resize_nearest

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    images, labels = [], []
    for _ in range(n):
        lab = np.zeros((h, w), np.uint8)
        for cls in range(1, 9):
            cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
            ry, rx = rng.uniform(0.04, 0.2) * h, rng.uniform(0.04, 0.2) * w
            lab[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = cls
        img = np.clip(0.2 + 0.07 * lab + rng.normal(0, 0.1, (h, w)), 0, 1).astype(np.float32)
        images.append(resize_image(img, size))
        labels.append(resize_nearest(lab, size))
    ids = tuple(str(i) for i in range(n))
    return ImageArrays(ids, np.stack(images), np.stack(labels), np.ones(n, bool))


def throughput(setting: str, device: torch.device, n_images: int, steps: int, warmup: int) -> dict:
    from monai.utils import set_determinism

    from usseg.experiment import Experiment
    from usseg.models import build_network
    from usseg.training.batches import epoch_batches, training_set
    from usseg.training.loop import MEMORY_FORMAT, build_loss, build_optimizer, train_step

    path, h, w = SETTINGS[setting]
    cfg = _load(path)
    exp = Experiment.from_config(cfg, "multiorgan_unet")
    set_determinism(0)
    torch.set_num_threads(exp.threads)
    lut = exp.label_lookup(cfg["dataset"])
    n_classes = len(exp.class_names(cfg["dataset"]))
    arrays = _synthetic_arrays(n_images, h, w, exp.image_size)
    data = training_set(arrays, [{"image_id": i, "modality": "AUS"} for i in arrays.image_ids], lut)
    net = build_network(exp.model, n_classes, exp.image_size).to(device, memory_format=MEMORY_FORMAT).train()
    loss_fn = build_loss(exp, cfg["dataset"], None).to(device)
    opt = build_optimizer(exp, net.parameters())
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
    bs = exp.batch_size

    def batches():
        epoch = 1
        while True:
            yield from epoch_batches(data, exp.augmentation, bs, exp.seed, epoch)
            epoch += 1

    it = batches()
    making = compute = 0.0
    images = 0
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        x, y = next(it)
        t1 = time.perf_counter()
        train_step(net, x, y, loss_fn, opt, scaler, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if step >= warmup:
            making += t1 - t0
            compute += t2 - t1
            images += int(x.shape[0])
    total = making + compute
    return {
        "setting": setting,
        "device": str(device),
        "image_size": "x".join(map(str, exp.image_size)),
        "batch": bs,
        "threads": exp.threads,
        "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
        "images_per_s": images / total,
        "step_ms": 1000 * total / steps,
        "batch_share": making / total,
    }


def print_table(rows: list[dict]) -> None:
    cols = [("setting", "{}"), ("device", "{}"), ("image_size", "{}"), ("batch", "{}"), ("threads", "{}"),
            ("params_M", "{:.2f}"), ("images_per_s", "{:.1f}"), ("step_ms", "{:.0f}"), ("batch_share", "{:.1%}")]
    print("| " + " | ".join(c for c, _ in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(fmt.format(r[c]) for c, fmt in cols) + " |")


def _prepare(args, cfg):
    """The demo dataset and the data steps' outputs in --work (reused with --reuse)."""
    from usseg.dataset_root import find_dataset_root
    from usseg.demo import generate_demo_dataset
    from usseg.manifest import write_manifest
    from usseg.masks import decode_masks
    from usseg.prepared_arrays import prepare_arrays, size_name
    from usseg.splits import write_splits

    ds = cfg["dataset"]
    work = Path(args.work)
    data_root, res = work / "data", work / "results"
    manifest, labels, splits = res / "manifest.csv", res / "labels", res / "splits.csv"
    if not (args.reuse and splits.exists()):
        generate_demo_dataset(data_root, args.size, 0, classes=ds["classes"])
        write_manifest(data_root, ds, False, manifest, res / "manifest_issues.csv")
        decode_masks(manifest, data_root, ds, labels)
        write_splits(manifest, labels / "decode_report.csv", cfg["split"]["val_fraction"], cfg["split"]["seed"], splits)
    root = find_dataset_root(data_root, ds["modalities"])
    arrays = {}
    for name in cfg["experiments"]:
        size = tuple(cfg["experiments"][name].get("image_size") or cfg["experiment_defaults"]["image_size"])
        path = res / "prepared" / f"{size_name(size)}.safetensors"
        if not (args.reuse and path.exists()):
            prepare_arrays(manifest, root, labels, size, len(ds["classes"]), path)
        arrays[size] = path
    return root, manifest, splits, labels, arrays


def workflow(args) -> int:
    import logging

    from usseg.contracts import EvaluationOutputs, TrainingOutputs
    from usseg.data import PreparedData
    from usseg.evaluate import evaluate_experiment
    from usseg.experiment import Experiment
    from usseg.train import train_experiment

    startup = time.process_time() - START_CPU
    logging.basicConfig(level=logging.WARNING)
    cfg = _load(Path(args.config))
    root, manifest, splits, labels, arrays = _prepare(args, cfg)
    res = Path(args.work) / "results"
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, demo {args.size}, "
          f"load average {os.getloadavg()[0]:.1f} at the start; start-up (imports) {startup:.1f} CPU s")
    print("| experiment | train CPU s | evaluate CPU s (all test sets) | organs with Dice >= 0.5 |")
    print("|---|---|---|---|")
    total_cpu = 0.0
    for name in cfg["experiments"]:
        exp = Experiment.from_config(cfg, name)
        prepared = PreparedData(cfg["dataset"], root, manifest, splits, labels, cfg["diagnostics"]["fov_threshold"],
                                arrays[exp.image_size])
        out = res / "experiments" / name
        t = time.process_time()
        trained = TrainingOutputs.in_folder(out)
        train_experiment(exp, prepared, trained, res / "checkpoints" / name)
        t_train = time.process_time() - t
        good = {}
        t = time.process_time()
        for test_set in cfg["test_sets"]:
            s = evaluate_experiment(exp, prepared, trained.model, test_set,
                                    EvaluationOutputs.in_folder(out / "eval" / test_set),
                                    evaluation=cfg["evaluation"], test_sets=cfg["test_sets"])
            good[test_set] = sum(1 for v in s["dice"].values() if v is not None and v >= 0.5)
        t_eval = time.process_time() - t
        total_cpu += t_train + t_eval
        shown = ", ".join(f"{k} {v}" for k, v in good.items())
        print(f"| {name} | {t_train:.1f} | {t_eval:.1f} | {shown} |", flush=True)
    print(f"total train+evaluate {total_cpu:.1f} CPU s; load average {os.getloadavg()[0]:.1f} at the end")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--images", type=int, default=48, help="synthetic training images")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workflow", action="store_true", help="train and evaluate --config on the demo dataset")
    ap.add_argument("--config", default=str(REPO / "config.yaml"))
    ap.add_argument("--size", default="small", choices=["tiny", "small", "full"])
    ap.add_argument("--work", default="/tmp/usseg-train-bench")
    ap.add_argument("--reuse", action="store_true", help="reuse the demo dataset and tables in --work")
    args = ap.parse_args(argv)
    if args.workflow:
        return workflow(args)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False  # as in training (set_determinism)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
          + (f", {torch.cuda.get_device_name()}" if device.type == "cuda" else "")
          + f", load average {os.getloadavg()[0]:.1f}")
    rows = []
    for setting in args.settings:
        steps = args.steps if setting == "default" or device.type == "cuda" else max(3, args.steps // 4)
        rows.append(throughput(setting, device, args.images, steps, args.warmup))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
