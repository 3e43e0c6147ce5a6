"""A job's share of the cores keeps the jobs at once within the CPUs; the GPU token only for trainings on a GPU."""

from __future__ import annotations

import pytest

from usseg import resources


@pytest.mark.parametrize(("threads", "cores", "cpus", "share"), [
    (1, 8, 2, 4), (1, 2, 2, 1), (1, 1, 2, 1), (1, 8, 16, 1), (2, 8, 16, 2), (1, 8, 4, 2), (2, 8, 2, 8),
    (4, 2, 16, 2),  # Snakemake caps a job at --cores
])
def test_a_job_s_share_of_the_cores(threads, cores, cpus, share):
    assert resources.cpu_slots(threads, cores, cpus=cpus) == share


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16, 64])
@pytest.mark.parametrize("cpus", [1, 2, 4, 6, 16])
def test_jobs_at_once_never_exceed_the_cpus(cores, cpus):
    # Snakemake runs one-thread jobs side by side while their shares fit in --cores.
    at_once = cores // resources.cpu_slots(1, cores, cpus=cpus)
    assert 1 <= at_once <= max(1, min(cores, cpus))
    if cores <= cpus:
        assert at_once == cores  # within the CPUs, --cores is what it says


def test_available_cpus_counts_this_process_s_cpus():
    assert 1 <= resources.available_cpus() <= (__import__("os").cpu_count() or 1)


def test_gpu_token_follows_the_device(monkeypatch):
    monkeypatch.setattr(resources, "cuda_visible", lambda: False)
    assert resources.gpu_token("cpu") == 0
    assert resources.gpu_token("cuda") == 1
    assert resources.gpu_token("auto") == 0
    assert resources.gpu_token("cuda", network=False) == 0  # the random forest
    monkeypatch.setattr(resources, "cuda_visible", lambda: True)
    assert resources.gpu_token("auto") == 1
    assert resources.gpu_token("cpu") == 0
