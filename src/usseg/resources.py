"""What a training job asks of the machine: its threads and the GPU token.

The train rule (rules/train.smk) calls these when Snakemake builds the DAG.
Threads scale with the cores Snakemake was given, so a bigger machine trains
faster; the `gpu` token is asked for only by a training that will really run on
a GPU, so on a CPU-only machine trainings run side by side instead of waiting
for a GPU that is not there.
"""

from __future__ import annotations

import functools
import glob
import os


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container or batch
    system may narrow), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform (macOS)
        return os.cpu_count() or 1


def train_threads(cores: int, cpus: int | None = None) -> int:
    """Half the cores (at least one): two trainings fit side by side on a CPU-only
    machine, and beside one GPU training the other half serves evaluation and
    diagnostics. Snakemake never gives a job more than --cores. The cores count
    at most as many as the CPUs there are (`cpus`, default available_cpus()):
    `make report` passes --cores 8, and on a 2-core laptop two trainings of 4
    threads each would oversubscribe the cores and slow every job."""
    cpus = available_cpus() if cpus is None else int(cpus)
    return max(1, min(int(cores), cpus) // 2)


@functools.cache
def cuda_visible() -> bool:
    """Whether PyTorch sees a CUDA GPU here (asked once per Snakemake run).

    Without a GPU driver's device files PyTorch cannot see one, and this is
    answered without importing torch, which would add seconds to every
    Snakemake start-up (each dry run, each SLURM job step).
    """
    if not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/proc/driver/nvidia/version")
            or os.path.exists("/dev/kfd")):  # NVIDIA's driver, or AMD's for ROCm builds of torch
        return False
    import torch

    return torch.cuda.is_available()


def gpu_token(device: str, *, network: bool = True) -> int:
    """1 when a job with this `device` setting (an experiment's, or nnunet.device) will use a GPU, else 0.

    `device: cpu` and anything that is not a network (the random forest) never
    use one; `device: cuda` always does; `device: auto` does when a GPU is
    visible (the same rule as usseg.models.resolve_device).
    """
    if not network or device == "cpu":
        return 0
    if device == "cuda":
        return 1
    return int(cuda_visible())
