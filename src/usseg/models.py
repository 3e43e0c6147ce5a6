"""Networks, devices and the saved-model format.

A saved model is `model.safetensors`: the network's state_dict (or the forest's
arrays, see usseg.forest) plus JSON metadata naming the model settings, output
classes, image size and the config hash it was trained with. `load_predictor`
rebuilds a predictor from that file alone, without unpickling anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from usseg import checkpoint, rerun
from usseg.errors import ConfigError, UssegError
from usseg.experiment import FOREST, NETWORK_NAMES, Experiment, ModelSettings

log = logging.getLogger("usseg.train")

MODEL_KIND = "usseg-model"


# ----------------------------------------------------------------------------- device


def resolve_device(exp: Experiment) -> torch.device:
    """exp.device: auto = CUDA when visible, else CPU; cuda without a GPU is an error."""
    setting = exp.device
    if setting == "cuda":
        if not torch.cuda.is_available():
            raise UssegError(
                f"device: cuda requested for experiment {exp.name} but no CUDA GPU is visible; "
                "set device: auto or cpu"
            )
        return torch.device("cuda")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cpu")


# ----------------------------------------------------------------------------- networks


def _norm(name: str):
    return {"batch": ("batch", {"affine": True}), "instance": ("instance", {"affine": True})}[name]


def unet_plus_plus_features(channels) -> tuple[int, ...]:
    """BasicUNetPlusPlus takes 5 encoder widths + 1 decoder-output width; derive them from
    exp.model.channels (extra entries dropped, missing deeper levels doubled)."""
    feats = [int(c) for c in channels[:5]]
    while len(feats) < 5:
        feats.append(feats[-1] * 2)
    return (*feats, feats[0])


class _FirstOutput(nn.Module):
    """BasicUNetPlusPlus returns a list (one entry per supervision head); keep the final one."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]


def build_network(model: ModelSettings | Mapping, n_classes: int, image_size=None, where: str = "model") -> nn.Module:
    """The network described by an experiment's model block (typed, or as a model file records it),
    1 input channel (grayscale), n_classes outputs."""
    # Late: MONAI takes seconds to import, and a job that reads a forest needs none of it.
    from monai.networks.nets import BasicUNetPlusPlus, UNet

    if isinstance(model, Mapping):
        model = ModelSettings.from_mapping(model)
    name = model.name
    if name == "unet":
        return UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=n_classes,
            channels=model.channels,
            strides=model.strides,
            num_res_units=model.num_res_units,
            norm=_norm(model.norm),
            dropout=model.dropout,
        )
    if name == "basic_unet_plus_plus":
        if image_size is not None and any(int(s) % 16 for s in image_size):
            raise ConfigError(
                f"{where}: basic_unet_plus_plus downsamples 4 times; image_size {list(image_size)} "
                "must be divisible by 16."
            )
        return _FirstOutput(
            BasicUNetPlusPlus(
                spatial_dims=2,
                in_channels=1,
                out_channels=n_classes,
                features=unet_plus_plus_features(model.channels),
                deep_supervision=False,
                norm=_norm(model.norm),
                dropout=model.dropout,
            )
        )
    raise ConfigError(f"{where}.name = {name!r} is not a network; use one of {', '.join(NETWORK_NAMES)}.")


# ----------------------------------------------------------------------------- saving and loading


def model_metadata(exp: Experiment, class_names: list[str], cfg_hash: str, **extra) -> dict:
    return {
        "kind": MODEL_KIND,
        "format_version": checkpoint.FORMAT_VERSION,
        "experiment": exp.name,
        "config_hash": cfg_hash,
        "class_names": list(class_names),
        "model": exp.settings["model"],
        "image_size": list(exp.image_size),
        **extra,
    }


def save_network(path, net: nn.Module, metadata: dict) -> None:
    checkpoint.save_tensors(path, {f"model.{k}": v for k, v in net.state_dict().items()}, metadata)


class NetworkPredictor:
    """Predict label maps at the model's image size with a trained network."""

    def __init__(self, net: nn.Module, metadata: dict, device: torch.device):
        self.net = net.to(device).eval()
        self.metadata = metadata
        self.device = device
        self.class_names = list(metadata["class_names"])
        self.image_size = tuple(metadata["image_size"])

    @torch.inference_mode()
    def predict_proba(self, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """images: (N, H, W) float32 in [0, 1] at image_size -> (N, C, H, W) class probabilities."""
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.as_tensor(np.asarray(images[i:i + batch_size], dtype=np.float32))[:, None].to(self.device)
            out.append(torch.softmax(self.net(x).float(), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names), *self.image_size), np.float32)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1).astype(np.uint8)


def load_predictor(path, device: torch.device | None = None):
    """A predictor (NetworkPredictor or forest.ForestPredictor) from a model.safetensors file."""
    # A rule's output: forcing its rule makes it again (training never copies a damaged checkpoint).
    remedy = f"Re-create it: {rerun.command('report', '--forcerun', str(path))}"
    tensors, meta = checkpoint.load_tensors(path, remedy=remedy)
    if meta.get("kind") != MODEL_KIND:
        raise UssegError(f"{path}: not a usseg model file (kind {meta.get('kind')!r}); it may be a training checkpoint.")
    name = meta["model"]["name"]
    if name == FOREST:
        from usseg.forest import ForestPredictor

        return ForestPredictor.from_tensors(tensors, meta)
    net = build_network(meta["model"], len(meta["class_names"]), meta["image_size"], where=str(path))
    state = checkpoint.split_prefix(tensors, "model.")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UssegError(f"{Path(path)}: weights do not fit the model described in its metadata ({exc}).") from None
    return NetworkPredictor(net, meta, device or torch.device("cpu"))
