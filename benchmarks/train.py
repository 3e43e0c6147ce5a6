"""Training throughput and data-loading share, and the demo workflow's training time.

Throughput (the default): for each model setting (config.yaml's defaults and
configs/article.yaml's), build the real training pipeline (CacheDataset with
the deterministic transforms, random augmentation, MONAI DataLoader, the loss,
optimizer and `usseg.train.train_step` used by training) over synthetic
ultrasound-sized images written to disk, and time `--steps` steps after
`--warmup`. "data wait" is the share of step time spent waiting for the next
batch from the loader; the rest is the optimisation step (on CUDA it is
synchronised so the GPU work is counted). A multi-organ (9-class) head is used.

    .venv/bin/python benchmarks/train.py                      # CPU, both settings
    .venv/bin/python benchmarks/train.py --device cuda        # on a GPU machine
    .venv/bin/python benchmarks/train.py --num-workers 0 2 4  # compare loader workers

Workflow (--workflow): generate the demo dataset (default `small`), run the
manifest, decode and split steps, then train and evaluate every experiment of
--config on every test set and print the time and liver Dice of each.
The budget for config.yaml on the small demo is 8 minutes on 2 CPU cores.

    .venv/bin/python benchmarks/train.py --workflow --work /tmp/usseg-train-bench
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch

from usseg.config import load_config

SETTINGS = {
    # name: (config file, source image height, width: the demo `small` / `full` sizes)
    "default": (REPO / "config.yaml", 160, 160),
    "article": (REPO / "configs" / "article.yaml", 460, 450),
}
WORKFLOW_BUDGET_S = {"small": 480.0}


def _load(path: Path) -> dict:
    """config.yaml, or config.yaml with a variant (configs/*.yaml) on top as the workflow reads it."""
    base = REPO / "config.yaml"
    return load_config(base) if path.resolve() == base.resolve() else load_config(base, path)


def _synthetic_records(folder: Path, n: int, h: int, w: int, seed: int = 0) -> list[dict]:
    """n grey PNG images with organ-like ellipses and their palette-index label arrays."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    records = []
    for i in range(n):
        lab = np.zeros((h, w), np.uint8)
        for cls in range(1, 9):
            cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
            ry, rx = rng.uniform(0.04, 0.2) * h, rng.uniform(0.04, 0.2) * w
            lab[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = cls
        img = np.clip(0.2 + 0.07 * lab + rng.normal(0, 0.1, (h, w)), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"{i}.png")
        np.save(folder / f"{i}.npy", lab)
        records.append({"image": str(folder / f"{i}.png"), "label": str(folder / f"{i}.npy"),
                        "image_id": str(i), "subject_id": "s", "modality": "AUS"})
    return records


def throughput(setting: str, device: torch.device, num_workers: int | None, n_images: int, steps: int,
               warmup: int, work: Path) -> dict:
    from monai.data import DataLoader
    from monai.utils import set_determinism

    from usseg import data
    from usseg.experiment import Experiment
    from usseg.models import build_network
    from usseg.train import build_loss, build_optimizer, train_step

    path, h, w = SETTINGS[setting]
    cfg = _load(path)
    exp = Experiment.from_config(cfg, "multiorgan_unet")
    if num_workers is not None:
        exp = exp.with_settings(num_workers=num_workers)
    set_determinism(0)
    lut = exp.label_lookup(cfg["dataset"])
    n_classes = len(exp.class_names(cfg["dataset"]))
    records = _synthetic_records(work / f"{setting}_{h}x{w}", n_images, h, w)
    t = time.perf_counter()
    ds = data.build_dataset(records, exp.image_size, exp.augmentation, lut, augment=True)
    cache_s = time.perf_counter() - t
    net = build_network(exp.model, n_classes, exp.image_size).to(device).train()
    loss_fn = build_loss(exp, cfg["dataset"], None).to(device)
    opt = build_optimizer(exp, net.parameters())
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
    bs = exp.batch_size

    def batches():
        epoch = 0
        while True:
            g = torch.Generator().manual_seed(epoch)
            yield from DataLoader(ds, batch_size=bs, shuffle=True, drop_last=True,
                                  num_workers=exp.num_workers, generator=g,
                                  pin_memory=device.type == "cuda",
                                  persistent_workers=False)
            epoch += 1

    it = batches()
    wait = compute = 0.0
    images = 0
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        train_step(net, batch, loss_fn, opt, scaler, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if step >= warmup:
            wait += t1 - t0
            compute += t2 - t1
            images += bs
    total = wait + compute
    return {
        "setting": setting,
        "device": str(device),
        "image_size": "x".join(map(str, exp.image_size)),
        "source": f"{h}x{w}",
        "batch": bs,
        "workers": exp.num_workers,
        "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
        "images_per_s": images / total,
        "step_ms": 1000 * total / steps,
        "data_wait_share": wait / total,
        "cache_s_per_100": 100 * cache_s / n_images,
    }


def print_table(rows: list[dict]) -> None:
    cols = [("setting", "{}"), ("device", "{}"), ("image_size", "{}"), ("source", "{}"), ("batch", "{}"),
            ("workers", "{}"), ("params_M", "{:.2f}"), ("images_per_s", "{:.1f}"), ("step_ms", "{:.0f}"),
            ("data_wait_share", "{:.1%}"), ("cache_s_per_100", "{:.2f}")]
    cells = [[fmt.format(r[c]) for c, fmt in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, (c, _) in enumerate(cols)]
    print("  ".join(c.ljust(wd) for (c, _), wd in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.ljust(wd) for v, wd in zip(row, widths)))


def workflow(args) -> int:
    import logging

    from usseg.data import PreparedData
    from usseg.dataset_root import find_dataset_root
    from usseg.demo import generate_demo_dataset
    from usseg.evaluate import evaluate_experiment
    from usseg.experiment import Experiment
    from usseg.manifest import write_manifest
    from usseg.masks import decode_masks
    from usseg.splits import write_splits
    from usseg.train import train_experiment

    logging.basicConfig(level=logging.WARNING)
    cfg = _load(Path(args.config))
    ds = cfg["dataset"]
    work = Path(args.work)
    data_root, res = work / "data", work / "results"
    manifest, labels, splits = res / "manifest.csv", res / "labels", res / "splits.csv"
    if not (args.reuse and splits.exists()):
        t = time.perf_counter()
        generate_demo_dataset(data_root, args.size, 0, classes=ds["classes"])
        write_manifest(data_root, ds, False, manifest, res / "manifest_issues.csv")
        decode_masks(manifest, data_root, ds, labels)
        write_splits(manifest, labels / "decode_report.csv", cfg["split"]["val_fraction"], cfg["split"]["seed"], splits)
        print(f"data preparation ({args.size}): {time.perf_counter() - t:.1f}s (not counted)")
    prepared = PreparedData(ds, find_dataset_root(data_root, ds["modalities"]), manifest, splits, labels,
                            cfg["diagnostics"]["fov_threshold"])
    total = time.perf_counter()
    cpu0 = os.times()
    print(f"{'experiment':28s} {'train_s':>8s} {'eval_s':>7s}  liver Dice test_aus / test_rus")
    for name in cfg["experiments"]:
        exp = Experiment.from_config(cfg, name)
        out = res / "experiments" / name
        t = time.perf_counter()
        train_experiment(exp, prepared, out, res / "checkpoints" / name)
        t_train = time.perf_counter() - t
        dice = {}
        for test_set in cfg["test_sets"]:
            s = evaluate_experiment(exp, prepared, out / "model.safetensors", test_set, out / "eval" / test_set)
            dice[test_set] = s["dice"].get("liver")
        t_eval = time.perf_counter() - t - t_train
        shown = " / ".join("n/a" if v is None else f"{v:.3f}" for v in dice.values())
        print(f"{name:28s} {t_train:8.1f} {t_eval:7.1f}  {shown}", flush=True)
    wall = time.perf_counter() - total
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    budget = WORKFLOW_BUDGET_S.get(args.size)
    print(f"total train+evaluate: {wall:.1f}s wall, {cpu:.1f}s CPU, {os.cpu_count()} CPUs, "
          f"load average at end {os.getloadavg()[0]:.1f}" + (f"; budget {budget:.0f}s" if budget else ""))
    return 0 if budget is None or wall <= budget else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--num-workers", type=int, nargs="+", default=[None],
                    help="DataLoader workers to try (default: each config's num_workers)")
    ap.add_argument("--images", type=int, default=48, help="synthetic images in the cached dataset")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--workflow", action="store_true", help="time train+evaluate of --config on the demo dataset")
    ap.add_argument("--config", default=str(REPO / "config.yaml"))
    ap.add_argument("--size", default="small", choices=["tiny", "small", "full"])
    ap.add_argument("--work", default="/tmp/usseg-train-bench")
    ap.add_argument("--reuse", action="store_true", help="reuse the demo dataset and tables in --work")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.workflow:
        return workflow(args)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False  # as in training (set_determinism)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (f", {torch.cuda.get_device_name()}" if device.type == "cuda" else ""))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            for nw in args.num_workers:
                steps = args.steps if setting == "default" or device.type == "cuda" else max(3, args.steps // 4)
                rows.append(throughput(setting, device, nw, args.images, steps, args.warmup, Path(tmp)))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
