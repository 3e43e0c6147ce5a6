"""Typed remedy settings parsed from an experiment's config block (remedy 7 of the brief).

Three blocks, documented in docs/remedies.md and checked against config.yaml's schema:

- ``remedy: {name: ..., <settings>}`` per experiment: at most one remedy of
  families 1, 3, 4 and 5 (`REMEDIES`); absent or ``{name: none}`` is today's pipeline.
- ``augmentation: {ultrasound: {<transform>: {prob: ..., <ranges>}}, generic: {...}}``
  beside the existing flip/noise/contrast keys: remedy family 2.
- ``gap_study: {...}`` at the top level: the study itself (its seeds, its remedies
  as overlays of the baseline experiment's settings, LOSO, learning curve, when to stop).

Every parser raises ConfigError naming the key at fault and the keys or
values allowed. The allowed keys are read from the dataclasses and from the
transforms' signatures, not from a second list.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType

from usseg.errors import ConfigError

# Parsing only: the transforms these settings describe are built by
# usseg.remedies.transforms. The remedy modules import MONAI and torch
# (seconds): the few checks that ask them (allowed values, a transform's
# settings) load them inside the function, so that checking a config, which
# every Snakemake start-up and every SLURM job step does, stays fast.
#
# The remedy modules are loaded by name through `implementation` (never by an
# import statement), from the table below: the code a job runs (usseg.code_deps
# reads import statements) then holds only the families its experiment uses,
# and `implementation_modules` adds those to a job's code inputs and to the
# training fingerprint. Editing one remedy's module re-runs only the jobs of
# the experiments that use it.
IMPLEMENTATIONS: dict[str, tuple[str, ...]] = {
    "fov_normalise": ("normalise",),
    "histogram_matching": ("style",),
    "fda": ("style",),
    # The target frames' bank (style.TargetBank) and the adaptation.
    "bn_adapt": ("tta", "style"),
    "pseudo_label": ("semi", "style"),
    "mean_teacher": ("semi", "style"),
    # augmentation.ultrasound and augmentation.generic (family 2).
    "ultrasound": ("us_augment",),
    "generic": ("us_augment",),
}
IMPLEMENTATION_PACKAGE = "usseg.remedies"


def implementation(module: str) -> ModuleType:
    """The remedy module usseg.remedies.<module>, one of IMPLEMENTATIONS' (loaded by name, see above)."""
    known = sorted({m for modules in IMPLEMENTATIONS.values() for m in modules})
    if module not in known:
        raise ValueError(f"{module!r} is not a remedy implementation module ({', '.join(known)})")
    return importlib.import_module(f"{IMPLEMENTATION_PACKAGE}.{module}")


def implementation_modules(remedy_block: Mapping | None, augmentation: Mapping | None) -> tuple[str, ...]:
    """Dotted names of the remedy modules an experiment with these blocks can run (sorted, no repeats)."""
    keys = [(remedy_block or {}).get("name", "none")]
    augmentation = augmentation or {}
    if augmentation.get("ultrasound"):
        keys.append("ultrasound")
    if augmentation.get("generic") not in (None, False):
        keys.append("generic")
    modules = {m for k in keys for m in IMPLEMENTATIONS.get(k, ())}
    return tuple(f"{IMPLEMENTATION_PACKAGE}.{m}" for m in sorted(modules))


@dataclass(frozen=True)
class NoRemedy:
    """Today's pipeline (the baseline every remedy is compared with)."""

    name: str = "none"


@dataclass(frozen=True)
class FovNormalisation:
    """Per-image intensity normalisation inside the field of view (train and test images alike)."""

    name: str = "fov_normalise"
    method: str = "percentile"  # percentile | zscore
    low: float = 1.0  # percentile mapped to 0 (method percentile)
    high: float = 99.0  # percentile mapped to 1


@dataclass(frozen=True)
class HistogramMatching:
    """Simulator training images matched to the grey-level distribution of unlabeled target frames."""

    name: str = "histogram_matching"
    reference: str = "random_frame"  # random_frame | pooled
    prob: float = 1.0
    max_target_images: int = 200  # target frames kept in the bank (a seeded sample)


@dataclass(frozen=True)
class FourierDomainAdaptation:
    """Yang & Soatto's FDA of simulator training images towards random unlabeled target frames."""

    name: str = "fda"
    beta: float | tuple[float, float] = 0.05  # number, or [low, high] sampled per image
    prob: float = 1.0
    max_target_images: int = 200


@dataclass(frozen=True)
class BatchNormAdaptation:
    """Batch-norm statistics re-estimated on target frames before predicting them."""

    name: str = "bn_adapt"
    frames: str = "unlabeled"  # unlabeled (the target's unlabeled frames) | test (the test frames themselves)
    batch_size: int = 16
    max_target_images: int = 200


@dataclass(frozen=True)
class PseudoLabel:
    """Self-training (usseg.training.semi): the trained model (teacher) labels unlabeled target frames where
    it is confident; training then continues on the labeled images plus those frames."""

    name: str = "pseudo_label"
    threshold: float = 0.9  # the teacher's softmax probability a pixel needs to keep its pseudo-label
    weight: float = 1.0  # weight of the pseudo-label loss beside the supervised loss
    self_training_epochs: int = 4  # the student's epochs, after the experiment's own `epochs` (the teacher's)
    max_target_images: int = 200


@dataclass(frozen=True)
class MeanTeacher:
    """Mean teacher (usseg.training.semi): EMA teacher, consistency loss on unlabeled target frames."""

    name: str = "mean_teacher"
    ema_decay: float = 0.99
    consistency_weight: float = 1.0
    rampup_epochs: int = 5
    max_target_images: int = 200


RemedySpec = (
    NoRemedy | FovNormalisation | HistogramMatching | FourierDomainAdaptation | BatchNormAdaptation | PseudoLabel
    | MeanTeacher
)
REMEDIES: dict[str, type] = {
    cls.name: cls  # type: ignore[attr-defined]
    for cls in (NoRemedy, FovNormalisation, HistogramMatching, FourierDomainAdaptation, BatchNormAdaptation,
                PseudoLabel, MeanTeacher)
}
# Remedies that read unlabeled target frames.
NEEDS_TARGET_FRAMES = ("histogram_matching", "fda", "bn_adapt", "pseudo_label", "mean_teacher")
# Remedies that act at prediction only: their training is the plain one (usseg.training.remedy adds
# nothing to it), so the gap study evaluates them on the baseline arm's trained models.
PREDICTION_ONLY = ("bn_adapt",)


def _choices(key: str) -> tuple[str, ...] | None:
    """The values a remedy setting allows, from the module that implements them (None: any)."""
    if key == "method":
        return implementation("normalise").METHODS
    if key == "reference":
        return implementation("style").REFERENCES
    return ("unlabeled", "test") if key == "frames" else None


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} = {value!r} must be a number.")
    return float(value)


def _coerce(value, f: dataclasses.Field, where: str):
    """A config value converted to the field's type, or a ConfigError naming the key."""
    kind = f.type  # a string: this module uses postponed annotations
    choices = _choices(f.name)
    if choices is not None:
        if value not in choices:
            raise ConfigError(f"{where} = {value!r}; use one of {', '.join(choices)}.")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where} = {value!r} must be a whole number >= 1.")
        return int(value)
    if kind == "float":
        return _number(value, where)
    if f.name == "beta":
        if isinstance(value, Sequence) and not isinstance(value, str):
            pair = tuple(_number(v, where) for v in value)
            if len(pair) != 2 or pair[0] > pair[1]:
                raise ConfigError(f"{where} = {list(value)} must be a pair [low, high] with low <= high.")
            return pair
        return _number(value, where)
    return value


def _validate(spec, where: str) -> None:
    """Range checks shared with the remedy modules (their messages name the remedy key)."""
    if isinstance(spec, FovNormalisation) and not 0 <= spec.low < spec.high <= 100:
        raise ConfigError(f"{where}.low = {spec.low}, {where}.high = {spec.high} must satisfy 0 <= low < high <= 100.")
    if isinstance(spec, FourierDomainAdaptation):
        for b in (spec.beta if isinstance(spec.beta, tuple) else (spec.beta,)):
            implementation("style").check_beta(b, f"{where}.beta")
    if isinstance(spec, PseudoLabel):
        implementation("semi").check_threshold(spec.threshold, f"{where}.threshold")
    for key in ("prob", "ema_decay"):
        v = getattr(spec, key, None)
        if v is not None and not 0.0 <= v <= 1.0:
            raise ConfigError(f"{where}.{key} = {v} must lie in [0, 1].")
    for key in ("weight", "consistency_weight"):
        v = getattr(spec, key, None)
        if v is not None and v < 0:
            raise ConfigError(f"{where}.{key} = {v} must be >= 0.")


def parse_remedy(block: Mapping | None, where: str = "remedy") -> RemedySpec:
    """The remedy of one experiment from its `remedy:` block (None or {} = no remedy)."""
    if block is None or block == {}:
        return NoRemedy()
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where} must be a mapping such as {{name: fda, beta: 0.05}}, got {block!r}.")
    name = block.get("name")
    if name not in REMEDIES:
        raise ConfigError(f"{where}.name = {name!r}; use one of {', '.join(REMEDIES)}.")
    cls = REMEDIES[name]
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "name"}
    unknown = sorted(set(block) - set(fields) - {"name"})
    if unknown:
        allowed = ", ".join(fields) or "no other keys"
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} for remedy {name}; allowed: {allowed}.")
    values = {k: _coerce(v, fields[k], f"{where}.{k}") for k, v in block.items() if k != "name"}
    spec = cls(**values)
    _validate(spec, where)
    return spec


# ----------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class GenericAugmentation:
    num_operations: int = 2
    magnitude: float = 1.0


@dataclass(frozen=True)
class AugmentationExtras:
    """The `augmentation.ultrasound` and `augmentation.generic` keys (family 2)."""

    ultrasound: Mapping[str, Mapping] = field(default_factory=dict)  # transform name -> its settings
    generic: GenericAugmentation | None = None


# Arguments of a transform that are wiring, not settings.
_WIRING = {"self", "keys", "fov_key", "fov_threshold", "allow_missing_keys"}


def transform_settings(name: str) -> list[str]:
    """The settings an ultrasound transform accepts, read from its signature."""
    us_augment = implementation("us_augment")
    params = inspect.signature(us_augment.ULTRASOUND_TRANSFORMS[name].__init__).parameters
    return [p for p in params if p not in _WIRING]


def parse_augmentation_extras(block: Mapping | None, where: str = "augmentation") -> AugmentationExtras:
    """`ultrasound` and `generic` of an experiment's augmentation block (the other keys are data.py's)."""
    block = block or {}
    us = block.get("ultrasound") or {}
    if not us and block.get("generic") in (None, False):
        return AugmentationExtras()
    us_augment = implementation("us_augment")

    if not isinstance(us, Mapping):
        raise ConfigError(f"{where}.ultrasound must map transform names to settings, got {us!r}.")
    checked = {}
    for name, settings in us.items():
        if name not in us_augment.ULTRASOUND_TRANSFORMS:
            raise ConfigError(
                f"{where}.ultrasound.{name} is not a transform; use {', '.join(us_augment.ULTRASOUND_TRANSFORMS)}."
            )
        settings = dict(settings or {})
        allowed = transform_settings(name)
        unknown = sorted(set(settings) - set(allowed))
        if unknown:
            raise ConfigError(
                f"{where}.ultrasound.{name}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}."
            )
        us_augment.ULTRASOUND_TRANSFORMS[name](**settings)  # the constructor checks the ranges
        checked[name] = settings
    generic = block.get("generic")
    generic_spec = None
    if generic is not None and generic is not False:
        if generic is True:
            generic = {}
        if not isinstance(generic, Mapping):
            raise ConfigError(f"{where}.generic must be a mapping {{num_operations, magnitude}} or true, got {generic!r}.")
        fields = {f.name: f for f in dataclasses.fields(GenericAugmentation)}
        unknown = sorted(set(generic) - set(fields))
        if unknown:
            raise ConfigError(f"{where}.generic: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}.")
        generic_spec = GenericAugmentation(**{k: _coerce(v, fields[k], f"{where}.generic.{k}") for k, v in generic.items()})
        us_augment.generic_strong_transforms((16, 16), generic_spec.num_operations, generic_spec.magnitude)
    return AugmentationExtras(ultrasound=checked, generic=generic_spec)


# ----------------------------------------------------------------------------- the study


# A remedy's key becomes part of file names (results/gap/arms/remedy_{key}/...).
REMEDY_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
# Experiment keys a remedy's settings may not change: the study compares the baseline's classes,
# and it sets the seeds itself (the experiment's seed + 0 .. seeds - 1 for every arm).
REMEDY_FIXED_KEYS = ("classes", "seed")


@dataclass(frozen=True)
class GapRemedy:
    """One remedy of the gap study: `gap_study.remedies.<key>: {title, settings}`.

    settings: an overlay of the baseline experiment's settings (mappings merge key by key, any
    other value replaces, as experiments override experiment_defaults); the arm trains the
    baseline's resolved settings with this on top (usseg.gap.study.arm_experiment).
    """

    key: str
    title: str  # the human name shown everywhere (the report shows the key beside it)
    settings: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class GapStudy:
    """The top-level `gap_study` block."""

    enabled: bool = False  # as config.yaml: the study is off unless asked for
    baseline: str = ""  # the experiment every remedy is compared with ("" = the first experiment)
    seeds: int = 3  # trainings per arm, seeds experiment seed + 0 .. seeds - 1
    # Laid over the baseline's settings for every arm (the baseline arm too), before a remedy's: sizes the
    # study's trainings (e.g. fewer epochs) without touching the experiments; {} = the baseline's own.
    arm_settings: Mapping = field(default_factory=dict)
    remedies: tuple[GapRemedy, ...] = ()
    learning_curve_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)  # shares of simulator training subjects
    loso: bool = True
    change_to_detect: float = 0.05  # the real-image Dice change "when to stop" sizes for
    alpha: float = 0.05
    power: float = 0.8


def parse_gap_remedies(block, where: str = "gap_study.remedies") -> tuple[GapRemedy, ...]:
    """`gap_study.remedies`: key -> {title, settings}, in the config's order."""
    if block is None:
        return ()
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where} must map remedy names to {{title, settings}}, got {block!r}.")
    out = []
    for key, entry in block.items():
        here = f"{where}.{key}"
        if not isinstance(key, str) or not re.match(REMEDY_KEY_PATTERN, key):
            raise ConfigError(f"{where}: {key!r} cannot name a remedy; use letters, digits, _ and - (it names folders).")
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{here} must be a mapping {{title: ..., settings: {{...}}}}, got {entry!r}.")
        unknown = sorted(set(entry) - {"title", "settings"})
        if unknown:
            raise ConfigError(f"{here}: unknown key(s) {', '.join(map(str, unknown))}; allowed: title, settings.")
        title = entry.get("title", key)
        if not isinstance(title, str) or not title.strip():
            raise ConfigError(f"{here}.title = {title!r} must be a non-empty name, e.g. 'Class weights'.")
        settings = entry.get("settings")
        if not isinstance(settings, Mapping) or not settings:
            raise ConfigError(f"{here}.settings must be a non-empty mapping of the baseline's settings this remedy "
                              f"changes, e.g. {{loss: {{class_weights: auto}}}}; got {settings!r}.")
        fixed = sorted(set(settings) & set(REMEDY_FIXED_KEYS))
        if fixed:
            raise ConfigError(f"{here}.settings: {', '.join(fixed)} cannot be changed by a remedy: every arm keeps "
                              "the baseline's classes, and the study sets the seeds (gap_study.seeds).")
        out.append(GapRemedy(key, title.strip(), dict(settings)))
    return tuple(out)


def parse_arm_settings(block, where: str = "gap_study.arm_settings") -> dict:
    """`gap_study.arm_settings`: experiment settings every arm trains with (none of REMEDY_FIXED_KEYS)."""
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where} must be a mapping of experiment settings, e.g. {{epochs: 12}}; got {block!r}.")
    fixed = sorted(set(block) & set(REMEDY_FIXED_KEYS))
    if fixed:
        raise ConfigError(f"{where}: {', '.join(fixed)} cannot be changed for the study's arms: every arm keeps "
                          "the baseline's classes, and the study sets the seeds (gap_study.seeds).")
    return dict(block)


def parse_gap_study(block: Mapping | None, where: str = "gap_study") -> GapStudy:
    if block is None:
        return GapStudy()
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {block!r}.")
    fields = {f.name for f in dataclasses.fields(GapStudy)}
    unknown = sorted(set(block) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}.")
    values = dict(block)
    for key in ("enabled", "loso"):
        if key in values and not isinstance(values[key], bool):
            raise ConfigError(f"{where}.{key} = {values[key]!r} must be true or false.")
    if "baseline" in values and not isinstance(values["baseline"], str):
        raise ConfigError(f"{where}.baseline = {values['baseline']!r} must be an experiment name.")
    if "seeds" in values:
        seeds = values["seeds"]
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"{where}.seeds = {seeds!r} must be a whole number >= 1 (3 or more to measure "
                              "training noise).")
    if "arm_settings" in values:
        values["arm_settings"] = parse_arm_settings(values["arm_settings"], f"{where}.arm_settings")
    if "remedies" in values:
        values["remedies"] = parse_gap_remedies(values["remedies"], f"{where}.remedies")
    if "learning_curve_fractions" in values:
        fr = values["learning_curve_fractions"]
        if not isinstance(fr, Sequence) or isinstance(fr, str) or not fr:
            raise ConfigError(f"{where}.learning_curve_fractions = {fr!r} must be a non-empty list such as [0.25, 0.5, 1.0].")
        fr = tuple(_number(v, f"{where}.learning_curve_fractions") for v in fr)
        if any(not 0 < v <= 1 for v in fr) or list(fr) != sorted(set(fr)):
            raise ConfigError(
                f"{where}.learning_curve_fractions = {list(fr)} must be increasing shares in (0, 1], e.g. [0.25, 0.5, 1.0]."
            )
        values["learning_curve_fractions"] = fr
    for key in ("change_to_detect", "alpha", "power"):
        if key in values:
            v = _number(values[key], f"{where}.{key}")
            if not 0 < v < 1:
                raise ConfigError(f"{where}.{key} = {v} must lie strictly between 0 and 1.")
            values[key] = v
    return GapStudy(**values)


def gap_baseline(config: Mapping) -> str:
    """The gap study's baseline experiment (gap_study.baseline, or the first experiment)."""
    name = (config.get("gap_study") or {}).get("baseline") or ""
    return name or next(iter(config["experiments"]))


# gap_closure.csv's remedy name of "adding real labels" (leave one subject out).
LOSO_REMEDY = "loso_real_labels"
LOSO_TITLE = "Adding labeled real subjects (leave one subject out)"


def gap_remedy_titles(config: Mapping) -> dict[str, str]:
    """gap_closure.csv's remedy name -> its human name: each gap_study.remedies entry's title, and LOSO's."""
    study = parse_gap_study(config.get("gap_study"))
    return {**{r.key: r.title for r in study.remedies}, LOSO_REMEDY: LOSO_TITLE}
