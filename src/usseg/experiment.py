"""One experiment's resolved settings, typed: what training, evaluation and the checks read.

config.yaml gives each experiment as `experiment_defaults` overridden by its own
keys (`resolve_experiment`; schema in config.schema.yaml).
`Experiment` wraps that resolved mapping and is the only way the library reads
it: `exp.epochs`, `exp.model.name`, `exp.remedy` (parsed, usseg.remedies.spec)
instead of `exp["model"]["name"]` under a different local name in every module.

The mapping itself stays the single source (`exp.settings`): it is what the
training fingerprint hashes and what a model file records, so a typed view can
never disagree with what was hashed. Derived experiments (the gap study's
LOSO and learning-curve variants, the sanity checks' short runs) are made with
`with_settings`, which builds a new Experiment from the changed mapping.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usseg.dataset_spec import DatasetSpec
from usseg.errors import ConfigError
from usseg.remedies import spec

NETWORK_NAMES = ("unet", "basic_unet_plus_plus")
FOREST = "random_forest"


REQUIRED_EXPERIMENT_KEYS = (
    "classes", "train_modalities", "model", "loss", "optimizer", "scheduler", "epochs",
    "batch_size", "image_size", "augmentation", "postprocess", "seed", "device",
)


def merge_settings(base: Mapping, override: Mapping) -> dict:
    """`base` with `override` on top: mappings merge key by key, any other value replaces (both copied)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_experiment(config: Mapping, name: str) -> dict:
    """The full settings of experiment `name`: experiment_defaults overridden by its own keys."""
    if name not in config["experiments"]:
        known = ", ".join(sorted(config["experiments"]))
        raise ConfigError(f"config.yaml: no experiment named {name!r}; experiments are: {known}.")
    exp = merge_settings(config.get("experiment_defaults", {}), config["experiments"][name] or {})
    exp["name"] = name
    if exp.get("train_modalities", "auto") == "auto":
        exp["train_modalities"] = DatasetSpec.from_config(config).default_train_modalities
    return exp


@dataclass(frozen=True)
class ModelSettings:
    """experiments.*.model: the network (or the random forest) and its size."""

    name: str
    channels: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    num_res_units: int = 0
    norm: str = "batch"
    dropout: float = 0.0

    @classmethod
    def from_mapping(cls, model: Mapping) -> ModelSettings:
        """From a config's or a model file's `model` block (unknown keys are the schema's business)."""
        return cls(
            name=str(model["name"]),
            channels=tuple(int(c) for c in model.get("channels", ())),
            strides=tuple(int(s) for s in model.get("strides", ())),
            num_res_units=int(model.get("num_res_units", 0)),
            norm=str(model.get("norm", "batch")),
            dropout=float(model.get("dropout", 0.0)),
        )


@dataclass(frozen=True)
class LossSettings:
    """experiments.*.loss."""

    name: str
    class_weights: Any  # "none" | "auto" | list of one weight per output class
    include_background: Any  # "auto" | bool


@dataclass(frozen=True)
class OptimizerSettings:
    """experiments.*.optimizer."""

    name: str
    lr: float
    weight_decay: float = 0.0


@dataclass(frozen=True)
class ForestSettings:
    """experiments.*.forest (random_forest only)."""

    n_estimators: int
    max_depth: int
    pixels_per_image: int


@dataclass(frozen=True)
class Experiment:
    """One experiment's resolved settings (see the module docstring)."""

    settings: Mapping = field(repr=False)

    def __post_init__(self):
        missing = [k for k in ("name", *REQUIRED_EXPERIMENT_KEYS) if k not in self.settings]
        if missing:
            name = self.settings.get("name", "?")
            raise ConfigError(
                f"experiments.{name}: missing {', '.join(missing)} (set it there or in experiment_defaults)."
            )
        # A private deep copy: a caller changing its mapping later cannot change this experiment.
        object.__setattr__(self, "settings", copy.deepcopy(dict(self.settings)))

    @classmethod
    def from_config(cls, config: Mapping, name: str) -> Experiment:
        """Experiment `name` of a checked config (experiment_defaults overridden by its own keys)."""
        return cls(resolve_experiment(config, name))

    def with_settings(self, **changes) -> Experiment:
        """A new experiment with top-level settings replaced (e.g. epochs=2, name="x_loso")."""
        return Experiment({**self.settings, **changes})

    def overlaid(self, overlay: Mapping, name: str) -> Experiment:
        """A new experiment named `name`: these settings with `overlay` merged on top (mappings key by key,
        as an experiment overrides experiment_defaults), except a `remedy` block, which replaces this one
        whole (each remedy has its own keys): a gap-study remedy's arm."""
        merged = merge_settings(self.settings, overlay)
        if "remedy" in overlay:
            merged["remedy"] = copy.deepcopy(overlay["remedy"])
        return Experiment({**merged, "name": name})

    def __repr__(self) -> str:
        return f"Experiment({self.name!r})"

    # ------------------------------------------------------------------ settings

    @property
    def name(self) -> str:
        return str(self.settings["name"])

    @property
    def where(self) -> str:
        """The config key of this experiment, for error messages."""
        return f"experiments.{self.name}"

    @property
    def classes(self) -> str | tuple[str, ...]:
        """"all" or the organs asked for."""
        value = self.settings["classes"]
        return "all" if value == "all" else tuple(str(c) for c in value)

    @property
    def train_modalities(self) -> tuple[str, ...]:
        return tuple(str(m) for m in self.settings["train_modalities"])

    @property
    def model(self) -> ModelSettings:
        return ModelSettings.from_mapping(self.settings["model"])

    @property
    def is_forest(self) -> bool:
        return self.model.name == FOREST

    @property
    def is_network(self) -> bool:
        return self.model.name in NETWORK_NAMES

    @property
    def loss(self) -> LossSettings:
        loss = self.settings["loss"]
        return LossSettings(str(loss["name"]), loss.get("class_weights", "none"), loss.get("include_background", "auto"))

    @property
    def optimizer(self) -> OptimizerSettings:
        opt = self.settings["optimizer"]
        return OptimizerSettings(str(opt["name"]), float(opt["lr"]), float(opt.get("weight_decay", 0.0)))

    @property
    def scheduler(self) -> str:
        return str(self.settings["scheduler"]["name"])

    @property
    def epochs(self) -> int:
        return int(self.settings["epochs"])

    @property
    def batch_size(self) -> int:
        return int(self.settings["batch_size"])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the images are resized to."""
        h, w = self.settings["image_size"]
        return int(h), int(w)

    @property
    def augmentation(self) -> dict:
        """The augmentation block (flip/noise/contrast plus the remedies' ultrasound/generic extras)."""
        return copy.deepcopy(dict(self.settings["augmentation"] or {}))

    @property
    def remedy(self) -> spec.RemedySpec:
        """The remedy block, parsed (usseg.remedies.spec; NoRemedy when absent)."""
        return spec.parse_remedy(self.settings.get("remedy"), f"{self.where}.remedy")

    @property
    def largest_component(self) -> bool:
        """postprocess.largest_component: keep each class's largest connected region only."""
        return bool((self.settings.get("postprocess") or {}).get("largest_component", False))

    @property
    def seed(self) -> int:
        return int(self.settings["seed"])

    @property
    def device(self) -> str:
        return str(self.settings.get("device", "auto"))

    @property
    def threads(self) -> int:
        """The CPU threads a training uses: a setting (in the fingerprint), never the machine's core count,
        so the same config gives the same model on a laptop and on a cluster node."""
        return int(self.settings.get("threads", 1))

    @property
    def early_stopping_patience(self) -> int | None:
        """early_stopping.patience: stop after this many epochs without a better validation Dice (None: never)."""
        value = (self.settings.get("early_stopping") or {}).get("patience")
        return None if value is None else int(value)

    @property
    def forest(self) -> ForestSettings:
        if "forest" not in self.settings:
            raise ConfigError(f"{self.where}: model random_forest needs a forest: section.")
        f = self.settings["forest"]
        return ForestSettings(int(f["n_estimators"]), int(f["max_depth"]), int(f["pixels_per_image"]))

    # ------------------------------------------------------------------ classes

    def class_names(self, dataset: DatasetSpec | Mapping) -> list[str]:
        """Output classes: background first, then the requested organs in palette order."""
        names = DatasetSpec.of(dataset).class_names
        if self.classes == "all":
            return names
        wanted = set(self.classes)
        return [names[0]] + [n for n in names[1:] if n in wanted]

    def label_lookup(self, dataset: DatasetSpec | Mapping) -> np.ndarray:
        """Array mapping palette index -> output index (classes left out become background)."""
        names = DatasetSpec.of(dataset).class_names
        out_names = self.class_names(dataset)
        lut = np.zeros(len(names), dtype=np.uint8)
        for i, n in enumerate(names):
            if n in out_names:
                lut[i] = out_names.index(n)
        return lut

    def include_background(self, dataset: DatasetSpec | Mapping) -> bool:
        """Whether the Dice term counts background: by default not for a single organ, where it would dominate."""
        setting = self.loss.include_background
        if setting == "auto":
            return len(self.class_names(dataset)) > 2
        return bool(setting)
