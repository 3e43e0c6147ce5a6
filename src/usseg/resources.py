"""What a job asks of the machine: its share of the cores and the GPU token.

The rules call these when Snakemake builds the DAG. A job's thread count is
not derived from the cores Snakemake was given: a training uses its
experiment's `threads` setting (part of its fingerprint), so the same config
gives the same numbers on any machine. What the cores decide is how many jobs
run side by side, and `cpu_slots` keeps that at most the number of CPUs there
are, also when --cores asks for more (`make report` passes --cores 8; on a
2-core laptop eight jobs at once would only slow every one of them). The `gpu`
token is asked for only by a training that will really run on a GPU, so on a
CPU-only machine trainings run side by side instead of waiting for a GPU that
is not there.
"""

from __future__ import annotations

import functools
import glob
import math
import os


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container or batch
    system may narrow), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform (macOS)
        return os.cpu_count() or 1


def cpu_slots(threads: int, cores: int, cpus: int | None = None) -> int:
    """The `threads:` a job using `threads` CPU threads declares to Snakemake, given --cores `cores` on a
    machine with `cpus` CPUs (default available_cpus()).

    Snakemake runs jobs side by side while their declared threads fit in --cores. Within the CPUs
    there are, a job declares its own threads. Given more cores than CPUs (--cores 8 on 2), each job
    declares ceil(cores / cpus) times its threads, so the jobs running at once use at most the CPUs
    there are (here 2 one-thread jobs instead of 8). Snakemake caps a job at --cores."""
    cpus = available_cpus() if cpus is None else int(cpus)
    scale = max(1, math.ceil(int(cores) / max(cpus, 1)))
    return max(1, min(int(cores), int(threads) * scale))


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
