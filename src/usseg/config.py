"""Load, validate and interpret config.yaml.

The JSON schema (config.schema.yaml, shipped with the package) checks types
and keys and fills defaults; `check_config` adds the checks a schema cannot
express (a class name that is not in the palette, a subject pattern without a
group, ...). Both raise ConfigError with the dotted key at fault, so the user
never has to read a traceback to find a typo.

This module must stay light: the Snakefile imports it on every start-up.
"""

from __future__ import annotations

import copy
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from usseg.contracts import test_set_name
from usseg.dataset_spec import SCHEMA_PATH, DatasetSpec
from usseg.errors import ConfigError
from usseg.experiment import Experiment, merge_settings, resolve_experiment
from usseg.remedies import spec


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _validator_filling_defaults():
    """A Draft 2020-12 validator that also writes `default` values into the instance."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def _dotted(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _schema_error_message(err: jsonschema.ValidationError, source: str) -> str:
    key = _dotted(err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = ", ".join(sorted(err.schema.get("properties", {}))) or "none"
        return (
            f"{source}: unknown key {', '.join(repr(e) for e in extra)} under {key}. "
            f"Allowed keys there: {allowed}. Check the spelling or remove it."
        )
    if err.validator == "enum":
        allowed = ", ".join(repr(v) for v in err.validator_value)
        return f"{source}: {key} = {err.instance!r} is not allowed; use one of {allowed}."
    if err.validator == "oneOf":
        return (
            f"{source}: {key} = {err.instance!r} has the wrong form. "
            f"See the comment beside this key in config.yaml for what it accepts."
        )
    return f"{source}: {key}: {err.message}. Fix this value in the config."


def validate_schema(config: dict, source: str = "config.yaml") -> dict:
    """Validate `config` in place against the schema, filling defaults; raise ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys to values, got {type(config).__name__}.")
    schema = load_schema()
    notes: list[str] = []
    coerce_text_values(config, schema, notes=notes)
    for note in notes:
        print(f"usseg: note: {source}: {note}", file=sys.stderr)
    reject_non_finite(config, source)
    validator = _validator_filling_defaults()(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise ConfigError(_schema_error_message(errors[0], source))
    return config


# ----------------------------------------------------------------------------- command line and overlays

# Keys (as paths) whose value an overlay (--configfile, --config) replaces
# instead of merging into: a variant's experiments and gap-study remedies are
# exactly the ones it lists, and a dataset description is the user's whole
# dataset (none of config.yaml's AUS/RUS modalities or palette creep in). The
# keys derived from the dataset (test_sets, train_modalities) follow it by
# default (derive_dataset_defaults).
REPLACED_BY_OVERLAY = (("experiments",), ("dataset",), ("gap_study", "remedies"))
AUTO = "auto"
_YAML_NULL_WORDS = {"null", "Null", "NULL", "~"}


def _subschema(schema: dict, root: dict) -> dict:
    while isinstance(schema, dict) and "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema if isinstance(schema, dict) else {}


def _types(schema: dict) -> set[str]:
    declared = schema.get("type")
    types = set(declared) if isinstance(declared, list) else {declared} if declared else set()
    for option in schema.get("oneOf", []) + schema.get("anyOf", []):
        types |= _types(option)
    return types


def _fits(value: Any, types: set[str]) -> bool:
    return (
        (value is None and "null" in types)
        or (isinstance(value, bool) and "boolean" in types)
        or (isinstance(value, int) and not isinstance(value, bool) and types & {"integer", "number"})
        or (isinstance(value, float) and "number" in types)
    )


# A number in exponent notation without a dot (1e-3, 5E4): YAML 1.1, which PyYAML
# reads, takes it for text; YAML 1.2 and every other reader for a number.
_EXPONENT_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _exponent_number(text: str, types: set[str]) -> float | int | None:
    """The number a YAML 1.1 exponent text such as '1e-3' means, when the schema wants one here."""
    if not _EXPONENT_NUMBER.match(text.strip()):
        return None
    value = float(text)
    if "number" in types:
        return value
    if "integer" in types and value.is_integer():
        return int(value)
    return None


def coerce_text_values(
    config: Any, schema: dict, _root: dict | None = None, notes: list[str] | None = None, _path: tuple = ()
) -> Any:
    """Read text where the schema wants a number, a boolean or null as YAML, in place.

    Snakemake passes a nested `--config` value ("split={seed: 4}") and a bare
    word ("data_root=null") as text, so without this "4" is "not of type
    integer" and null is a folder named "null". Only text that is not allowed
    where it stands (or a YAML null word where null is allowed) is converted,
    so a name or a pattern is never reinterpreted. A number in exponent
    notation without a dot (`lr: 1e-3`, text to YAML 1.1) is read as the
    number, and a sentence saying so is appended to `notes` (when given).
    """
    root = schema if _root is None else _root
    schema = _subschema(schema, root)
    if isinstance(config, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in config.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                config[key] = coerce_text_values(value, sub, root, notes, (*_path, key))
        return config
    if isinstance(config, list):
        items = schema.get("items")
        for option in schema.get("oneOf", []) + schema.get("anyOf", []):  # e.g. class_weights
            option = _subschema(option, root)
            if items is None and option.get("type") == "array":
                items = option.get("items")
        if isinstance(items, dict):
            config[:] = [coerce_text_values(v, items, root, notes, (*_path, i)) for i, v in enumerate(config)]
        return config
    if isinstance(config, str):
        types = _types(schema)
        if config in _YAML_NULL_WORDS and "null" in types:
            return None
        if "string" in types or not types:
            return config
        try:
            value = yaml.safe_load(config)
        except yaml.YAMLError:
            return config
        if _fits(value, types):
            return value
        number = _exponent_number(config, types)
        if number is not None:
            if notes is not None:
                notes.append(
                    f"{_dotted(_path)} = {config!r} was read as the number {number!r}. YAML 1.1 (which "
                    f"config files are read with) takes a number in exponent notation without a dot for "
                    f"text; write {_yaml11_number(config)} to say it unambiguously."
                )
            return number
        return config
    return config


def _yaml11_number(text: str) -> str:
    """'1e-3' -> '1.0e-3': the spelling YAML 1.1 reads as a number."""
    mantissa, _, exponent = text.strip().lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{exponent}"


def reject_non_finite(config: Any, source: str, path: tuple = ()) -> None:
    """Raise ConfigError for a NaN or infinite number anywhere: no setting means either."""
    if isinstance(config, dict):
        for key, value in config.items():
            reject_non_finite(value, source, (*path, key))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            reject_non_finite(value, source, (*path, i))
    elif isinstance(config, float) and not math.isfinite(config):
        raise ConfigError(
            f"{source}: {_dotted(path)} = {config!r} is not a finite number; "
            "give a real number (e.g. 0.001), not .nan or .inf."
        )


def apply_overlay(base: dict, overlay: dict) -> dict:
    """config.yaml (`base`) with a variant (`overlay`) on top, as the workflow reads them.

    Mappings merge key by key, any other value replaces; the keys in
    REPLACED_BY_OVERLAY are replaced whole, so a variant that lists
    experiments (or gap_study.remedies, or a dataset) runs exactly those (none
    of config.yaml's creep in).
    """
    merged = merge_settings(base, overlay)
    for path in REPLACED_BY_OVERLAY:
        node, target = overlay, merged
        for key in path[:-1]:
            node, target = node.get(key), target.get(key)
            if not isinstance(node, dict) or not isinstance(target, dict):
                break
        else:
            if path[-1] in node:
                target[path[-1]] = copy.deepcopy(node[path[-1]])
    return merged


def derive_dataset_defaults(config: dict) -> dict:
    """Replace `auto` in the keys that follow the dataset description, in place.

    test_sets: auto -> one test set per modality, test_<modality in lower case>
    (the split step stops, naming the key, when one of them gets no image);
    experiment_defaults.train_modalities, experiments.*.train_modalities and
    nnunet.train_modalities: auto -> every modality but the target. A list
    given explicitly is kept as it is.
    """
    dataset = DatasetSpec.from_config(config)
    if config.get("test_sets", AUTO) == AUTO:
        config["test_sets"] = [test_set_name(m) for m in dataset.modality_names]
    train = dataset.default_train_modalities
    for block in (config.get("experiment_defaults"), *(config.get("experiments") or {}).values(), config.get("nnunet")):
        if isinstance(block, dict) and block.get("train_modalities", None) == AUTO:
            block["train_modalities"] = list(train)
    defaults = config.setdefault("experiment_defaults", {})
    defaults.setdefault("train_modalities", list(train))
    return config


def flat_split_settings(config: dict) -> dict:
    """What the split step needs to draw test subjects in a flat layout ({} for split folders, so that a
    change of experiments re-runs no split of the reference layout): split.test_fraction and the
    modalities some experiment trains on (draw_test_subjects)."""
    if not DatasetSpec.from_config(config).is_flat:
        return {}
    return {"test_fraction": config["split"]["test_fraction"], "trained_modalities": trained_modalities(config)}


def trained_modalities(config: dict) -> list[str]:
    """Every modality some experiment (or the nnU-Net reference, when on) trains on, in dataset order."""
    used: set[str] = set()
    for name in config["experiments"]:
        used.update(resolve_experiment(config, name)["train_modalities"])
    nnunet = config.get("nnunet") or {}
    if nnunet.get("enabled", False):
        used.update(nnunet.get("train_modalities") or [])
    return [m for m in DatasetSpec.from_config(config).modality_names if m in used]


# ----------------------------------------------------------------------------- semantic checks


def check_data_root_arguments(config_args) -> None:
    """ConfigError for `--config data_root=` with nothing after the `=`.

    Snakemake turns an empty `--config` value into null before the workflow
    sees it, and null means "generate the demo": an unset shell variable
    (`--config data_root=$DATA`) would quietly run the demo. `config_args`
    are the raw `--config` arguments (Snakemake's config_settings.config_args).
    """
    for arg in config_args or ():
        key, sep, value = str(arg).partition("=")
        if key.strip() == "data_root" and sep and not value.strip():
            raise ConfigError(
                "--config data_root= gives data_root no value (an unset or empty shell variable?). Give the "
                "folder that holds your dataset (--config data_root=/path/to/data), or data_root=null for the "
                "generated demo dataset."
            )


def _check_dataset_present(config: dict, source: str) -> None:
    """ConfigError for a dataset section without its required keys, saying that an overlay replaces it whole."""
    ds = config.get("dataset") if isinstance(config, dict) else None
    if not isinstance(ds, dict):
        return  # the schema names it
    missing = [k for k in ("classes", "modalities", "target_modality") if k not in ds]
    if missing:
        raise ConfigError(
            f"{source}: dataset lacks {', '.join(missing)}. A dataset section in an overlay (--configfile) "
            "replaces config.yaml's whole dataset section, so it must describe the whole dataset: classes, "
            "modalities and target_modality (copy config.yaml's section and change it, or write one with "
            "`python -m usseg.describe FOLDER`; docs/own-data.md)."
        )


def check_dataset_layout(config: dict, source: str) -> None:
    """ConfigError for modality folders that overlap or collide with the images or masks folder names."""
    spec = DatasetSpec.from_config(config)
    seen: dict[str, str] = {}
    for mod in spec.modalities.values():
        folder = mod.folder_path or "."
        key = f"dataset.modalities.{mod.name}.folder"
        if folder in seen:
            raise ConfigError(
                f"{source}: {key}: modalities {seen[folder]} and {mod.name} both use the folder {folder!r}; each "
                "modality needs its own folder."
            )
        if folder.split("/")[0] in (spec.images_dir, spec.annotations_dir) or ".." in folder.split("/"):
            raise ConfigError(
                f"{source}: {key} = {folder!r} cannot be used: it names the images or masks folder, or leaves the "
                "dataset root. Give the modality's folder below the dataset root, or '.' for the root itself."
            )
        seen[folder] = mod.name
    if spec.images_dir == spec.annotations_dir:
        raise ConfigError(
            f"{source}: dataset.images_dir and dataset.annotations_dir are both {spec.images_dir!r}; images and "
            "masks need folders of their own."
        )
    guesses = config["dataset"].get("guesses_to_confirm")
    if guesses:
        raise ConfigError(
            f"{source}: dataset.guesses_to_confirm lists what `usseg.describe` guessed ({'; '.join(map(str, guesses))}). "
            "Check each value marked GUESS in your dataset description, correct it if needed, then delete "
            "guesses_to_confirm: nothing runs on a guess."
        )


def check_data_root(config: dict, source: str) -> None:
    """ConfigError for a data_root that is empty or only blanks: only null means the demo."""
    value = config.get("data_root")
    if isinstance(value, str) and not value.strip():
        raise ConfigError(
            f"{source}: data_root = {value!r} is empty. Set it to the folder that holds your dataset, or to "
            "null for the generated demo dataset."
        )


def check_config(config: dict, source: str = "config.yaml") -> dict:
    """Validate schema and meaning; return the config with defaults filled. Raises ConfigError."""
    _check_dataset_present(config, source)
    validate_schema(config, source)
    check_data_root(config, source)
    check_dataset_layout(config, source)
    derive_dataset_defaults(config)
    ds = config["dataset"]
    names = DatasetSpec(ds).class_names
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: dataset.classes has a repeated class name; each name must be unique.")
    colours = [tuple(c["rgb"]) for c in ds["classes"]]
    for i, col in enumerate(colours):
        if colours.index(col) != i:
            raise ConfigError(
                f"{source}: dataset.classes: {names[i]!r} and {names[colours.index(col)]!r} share the colour {list(col)}; "
                "every class needs its own colour."
            )
    for mod, settings in ds["modalities"].items():
        key = f"dataset.modalities.{mod}.subject_pattern"
        try:
            pattern = re.compile(settings["subject_pattern"])
        except re.error as exc:
            raise ConfigError(f"{source}: {key} is not a valid regular expression: {exc}.") from None
        if pattern.groups < 1:
            raise ConfigError(f"{source}: {key} needs one capture group around the subject id, e.g. '^(ct\\d+)-\\d+$'.")
    if ds["target_modality"] not in ds["modalities"]:
        raise ConfigError(
            f"{source}: dataset.target_modality = {ds['target_modality']!r} is not one of the modalities "
            f"({', '.join(ds['modalities'])})."
        )
    diag = config.get("diagnostics", {})
    for key in ("min_labeled_target_subjects", "min_target_label_share"):
        th = diag.get(key)
        if th and th["fail_below"] > th["warn_below"]:
            raise ConfigError(f"{source}: diagnostics.{key}: fail_below must not exceed warn_below.")
    auc = diag.get("domain_auc")
    if auc and auc["fail_above"] < auc["warn_above"]:
        raise ConfigError(f"{source}: diagnostics.domain_auc: fail_above must not be below warn_above.")
    known = {test_set_name(m): m for m in config["dataset"]["modalities"]}
    for test_set in config["test_sets"]:
        if test_set not in known:
            raise ConfigError(
                f"{source}: test_sets: {test_set!r} names no modality of dataset.modalities; a test set is "
                f"test_<modality in lower case>: {', '.join(known)}."
            )
    check_name_lengths(config, source)
    for name in config["experiments"]:
        _check_experiment(config, name, source)
    check_gap_study(config, source)
    return config


# The longest file name each kind of name becomes part of (see rules/*.smk).
NAME_FILE_PATTERNS = {
    "experiments": "{}.json.tmp",  # results/provenance/train/{experiment}.json
    "dataset.modalities": "label_gallery_{}.png",  # results/diagnostics/label_gallery_{modality}.png
    "gap_study.remedies": "arm_remedy_{}.log",  # results/logs/gap/arm_remedy_{remedy}.log
}


def check_name_lengths(config: dict, source: str, name_max: int | None = None) -> None:
    """Raise ConfigError for a name too long for a file name on this file system.

    Found at start-up rather than when the first file is written, hours into a run.
    """
    if name_max is None:
        try:
            name_max = os.pathconf(".", "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):
            name_max = 255
    for dotted, pattern in NAME_FILE_PATTERNS.items():
        for name in get(config, dotted):
            length = len(os.fsencode(pattern.format(name)))
            if length > name_max:
                allowed = name_max - (length - len(os.fsencode(name)))
                raise ConfigError(
                    f"{source}: {dotted}: the name {name[:40]!r}... has {len(os.fsencode(name))} bytes; "
                    f"this file system allows file names of {name_max} bytes, which leaves {allowed} "
                    f"for this name (it becomes {pattern.format('NAME')!r}). Use a shorter name."
                )


def _check_experiment(config: dict, name: str, source: str) -> None:
    _check_experiment_settings(config, resolve_experiment(config, name), f"{source}: experiments.{name}", source)


def _check_experiment_settings(config: dict, settings: dict, where: str, source: str) -> None:
    """The checks of one experiment's resolved settings; `where` names its key in messages."""
    try:
        exp = Experiment(settings)  # checks the required keys
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    ds = config["dataset"]
    names = DatasetSpec(ds).class_names
    if exp.classes != "all":
        for cls in exp.classes:
            if cls not in names:
                raise ConfigError(
                    f"{where}.classes: {cls!r} is not a class of dataset.classes; known classes: {', '.join(names[1:])}. "
                    "An experiment of config.yaml that names the reference's organs does not fit another "
                    "palette: give an experiments: section of your own in your overlay (it replaces config.yaml's; "
                    "`python -m usseg.describe` writes one), or use configs/quick.yaml."
                )
            if cls == names[0]:
                raise ConfigError(f"{where}.classes: {cls!r} is the background; list organs only.")
    for mod in exp.train_modalities:
        if mod not in ds["modalities"]:
            raise ConfigError(
                f"{where}.train_modalities: {mod!r} is not a modality of dataset.modalities ({', '.join(ds['modalities'])})."
            )
    weights = exp.loss.class_weights
    out_names = exp.class_names(ds)
    if isinstance(weights, list) and len(weights) != len(out_names):
        raise ConfigError(
            f"{where}.loss.class_weights has {len(weights)} values but the experiment has {len(out_names)} output "
            f"classes ({', '.join(out_names)}); give one weight per class, background first."
        )
    model = settings["model"]
    if exp.is_network:
        for key in ("channels", "strides"):
            if key not in model:
                raise ConfigError(f"{where}.model.{key} is missing.")
        if len(model["strides"]) != len(model["channels"]) - 1:
            raise ConfigError(
                f"{where}.model: strides needs one entry fewer than channels "
                f"(got {len(model['channels'])} channels, {len(model['strides'])} strides)."
            )
        factor = int(np.prod(model["strides"]))
        if any(s % factor for s in exp.image_size):
            raise ConfigError(
                f"{where}.image_size {list(exp.image_size)} must be divisible by the product of the strides ({factor})."
            )
    if exp.is_forest and "forest" not in settings:
        raise ConfigError(f"{where}: model random_forest needs a forest: section.")


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None


def load_config(path: str | Path, *overlays: str | Path) -> dict:
    """Read and check a config file (for tools and tests outside Snakemake).

    With overlays (e.g. load_config("config.yaml", "configs/article.yaml")),
    each is applied on top as `--configfile` is by the workflow (apply_overlay).
    """
    paths = [Path(path), *(Path(o) for o in overlays)]
    config = _read_yaml(paths[0])
    for overlay in paths[1:]:
        layer = _read_yaml(overlay)
        if not isinstance(layer, dict):
            raise ConfigError(f"{overlay}: an overlay must be a mapping of keys to values.")
        config = apply_overlay(config, layer)
    return check_config(config, source=" + ".join(str(p) for p in paths))


def write_resolved_config(config: dict, path: str | Path) -> None:
    """Write the configuration a run resolved (overlays applied, defaults filled) as YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# The configuration this run resolved: config.yaml, overlays, --config, schema defaults.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def get(config: dict, dotted: str) -> Any:
    """Value at a dotted key, e.g. get(cfg, 'split.seed')."""
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def check_gap_study(config: dict, source: str = "config.yaml") -> None:
    """Check every experiment's remedy and augmentation extras, and the gap_study block (docs/remedies.md)."""
    for name in config["experiments"]:
        exp = Experiment.from_config(config, name)
        where = f"{source}: experiments.{name}"
        remedy = spec.parse_remedy(exp.settings.get("remedy"), f"{where}.remedy")
        spec.parse_augmentation_extras(exp.augmentation, f"{where}.augmentation")
        if remedy.name != "none" and exp.is_forest:
            raise ConfigError(f"{where}.remedy: the random forest does not run remedies; use a network experiment.")
        if remedy.name == "bn_adapt" and (exp.is_forest or exp.model.norm != "batch"):
            raise ConfigError(
                f"{where}.remedy: bn_adapt re-estimates batch-norm statistics; it needs a network with "
                "model.norm: batch (this experiment has none)."
            )
    study = spec.parse_gap_study(config.get("gap_study"), f"{source}: gap_study")
    if study.enabled:
        if study.baseline and study.baseline not in config["experiments"]:
            raise ConfigError(
                f"{source}: gap_study.baseline = {study.baseline!r} is not an experiment; experiments are: "
                f"{', '.join(sorted(config['experiments']))}."
            )
        baseline = spec.gap_baseline(config)
        if Experiment.from_config(config, baseline).is_forest:
            raise ConfigError(f"{source}: gap_study.baseline = {baseline!r} is a random forest; pick a network experiment.")
        base_settings = resolve_experiment(config, spec.gap_baseline(config))
        if study.arm_settings:
            where = f"{source}: gap_study.arm_settings"
            exp = Experiment(base_settings).overlaid(study.arm_settings, base_settings["name"])
            _check_experiment_settings(config, dict(exp.settings), where, source)
            if not exp.is_network:
                raise ConfigError(f"{where}: the study's arms train a network like the baseline; model.name "
                                  f"{exp.model.name!r} is not one.")
            base_settings = dict(exp.settings)
        for remedy in study.remedies:
            where = f"{source}: gap_study.remedies.{remedy.key}.settings"
            exp = Experiment(base_settings).overlaid(remedy.settings, remedy.key)
            _check_experiment_settings(config, dict(exp.settings), where, source)
            if not exp.is_network:
                raise ConfigError(f"{where}: a remedy trains a network like the baseline; model.name "
                                  f"{exp.model.name!r} is not one.")
            spec.parse_remedy(exp.settings.get("remedy"), f"{where}.remedy")
            spec.parse_augmentation_extras(exp.augmentation, f"{where}.augmentation")
            if exp.remedy.name == "bn_adapt" and exp.model.norm != "batch":
                raise ConfigError(f"{where}.remedy: bn_adapt re-estimates batch-norm statistics; it needs "
                                  "model.norm: batch.")
            if exp.settings == {**base_settings, "name": remedy.key}:  # e.g. class_weights: none, the default
                raise ConfigError(f"{where} changes nothing of the baseline {base_settings['name']!r}'s settings; "
                                  "give the settings this remedy changes.")
