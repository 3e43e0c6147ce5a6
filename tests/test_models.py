import pickle

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO
from usseg import checkpoint
from usseg.errors import ConfigError, UssegError
from usseg.experiment import Experiment
from usseg.models import (
    build_network,
    load_predictor,
    model_metadata,
    resolve_device,
    save_network,
    unet_plus_plus_features,
)

torch.set_num_threads(1)

UNET = {"name": "unet", "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 1, "norm": "batch", "dropout": 0.0}
UNETPP = {"name": "basic_unet_plus_plus", "channels": [4, 8, 16], "strides": [2, 2], "norm": "instance", "dropout": 0.0}


def _exp(model=UNET, n_classes=2, **settings):
    """Experiment "toy": config.yaml's experiment defaults with `model` at 32x32."""
    classes = ["liver"] if n_classes == 2 else "all"
    defaults = yaml.safe_load((REPO / "config.yaml").read_text())["experiment_defaults"]
    return Experiment({**defaults, "name": "toy", "model": model, "image_size": [32, 32], "classes": classes,
                       **settings})


@pytest.mark.parametrize("model", [UNET, UNETPP], ids=["unet", "unet++"])
@pytest.mark.parametrize("n_classes", [2, 9])
def test_network_has_one_input_channel_and_one_output_per_class(model, n_classes):
    net = build_network(model, n_classes, [32, 32]).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, n_classes, 32, 32)


def test_unet_plus_plus_features_follow_channels():
    assert unet_plus_plus_features([4, 8, 16]) == (4, 8, 16, 32, 64, 4)
    assert unet_plus_plus_features([16, 32, 64, 128, 256, 512]) == (16, 32, 64, 128, 256, 16)
    with pytest.raises(ConfigError, match="divisible by 16"):
        build_network(UNETPP, 2, [40, 40])


def test_device_cuda_without_gpu_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UssegError, match="device: cuda requested for experiment toy but no CUDA GPU is visible; "
                                         "set device: auto or cpu"):
        resolve_device(_exp(device="cuda"))
    assert resolve_device(_exp(device="auto")).type == "cpu"
    assert resolve_device(_exp(device="cpu")).type == "cpu"


@pytest.mark.parametrize("model", [UNET, UNETPP], ids=["unet", "unet++"])
def test_saved_network_reloads_and_predicts_the_same(tmp_path, model):
    torch.manual_seed(0)
    net = build_network(model, 9, [32, 32])
    # A few training steps so that the BatchNorm running statistics are not the defaults.
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        net(torch.rand(2, 1, 32, 32)).mean().backward()
        opt.step()
    path = tmp_path / "model.safetensors"
    save_network(path, net, model_metadata(_exp(model, 9), [f"c{i}" for i in range(9)], "abc123"))
    images = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
    net.eval()
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(images)[:, None]), 1).numpy()
    pred = load_predictor(path)
    assert pred.class_names == [f"c{i}" for i in range(9)]
    assert pred.metadata["config_hash"] == "abc123"
    np.testing.assert_allclose(pred.predict_proba(images), expected, rtol=1e-5, atol=1e-6)
    assert np.array_equal(pred.predict(images), expected.argmax(1))


def test_loading_never_unpickles(tmp_path, monkeypatch):
    net = build_network(UNET, 2, [32, 32])
    good = tmp_path / "model.safetensors"
    save_network(good, net, model_metadata(_exp(UNET), ["background", "liver"], "h"))

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load_predictor(good)  # works without pickle

    pickled = tmp_path / "pickled.safetensors"
    with open(pickled, "wb") as f:
        pickle.dump({"weights": [1, 2, 3]}, f)
    with pytest.raises(UssegError, match="pickled.safetensors: not a readable safetensors file"):
        load_predictor(pickled)


def test_foreign_or_missing_files_are_named(tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(UssegError, match="foreign.safetensors: a safetensors file without usseg metadata"):
        load_predictor(foreign)
    with pytest.raises(UssegError, match="missing.safetensors: model/checkpoint file does not exist"):
        load_predictor(tmp_path / "missing.safetensors")
    ckpt = tmp_path / "last.safetensors"
    checkpoint.save_tensors(ckpt, {"x": torch.ones(1)}, {"kind": "usseg-training-checkpoint"})
    with pytest.raises(UssegError, match="not a usseg model file"):
        load_predictor(ckpt)


def test_optimizer_state_round_trips_through_tensors_and_json(tmp_path):
    net = build_network(UNET, 2, [32, 32])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.rand(2, 1, 32, 32)).mean().backward()
    opt.step()
    tensors, meta = checkpoint.flatten_optimizer(opt)
    checkpoint.save_tensors(tmp_path / "o.safetensors", tensors, {"opt": meta})
    t2, m2 = checkpoint.load_tensors(tmp_path / "o.safetensors")
    opt2 = torch.optim.Adam(build_network(UNET, 2, [32, 32]).parameters(), lr=5.0)
    checkpoint.restore_optimizer(opt2, t2, m2["opt"])
    a, b = opt.state_dict(), opt2.state_dict()
    assert b["param_groups"][0]["lr"] == 1e-3
    for pid in a["state"]:
        for k, v in a["state"][pid].items():
            assert torch.equal(v, b["state"][pid][k])
