"""Training threads scale with the cores; the GPU token only for trainings that use a GPU."""

from __future__ import annotations

import pytest

from usseg import resources


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8)])
def test_train_threads_is_half_the_cores(cores, threads):
    assert resources.train_threads(cores, cpus=64) == threads


@pytest.mark.parametrize(("cores", "cpus", "threads"), [(8, 2, 1), (8, 4, 2), (8, 16, 4), (2, 16, 1)])
def test_train_threads_never_exceed_half_the_cpus_there_are(cores, cpus, threads):
    assert resources.train_threads(cores, cpus=cpus) == threads


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
