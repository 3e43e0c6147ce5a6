"""config.yaml validation: every mistake stops the run with the key at fault named."""

import copy

import pytest
import yaml

from conftest import REPO
from usseg.config import check_config, load_config
from usseg.errors import ConfigError
from usseg.experiment import Experiment, resolve_experiment


@pytest.fixture()
def cfg():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def expect_error(config, *fragments):
    with pytest.raises(ConfigError) as err:
        check_config(config)
    for fragment in fragments:
        assert fragment in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("overlays", [[], ["configs/tiny.yaml"], ["configs/article.yaml"]])
def test_shipped_configs_are_valid(overlays):
    load_config(REPO / "config.yaml", *(REPO / o for o in overlays))


def test_defaults_are_filled(cfg):
    del cfg["split"]
    del cfg["strict"]
    check_config(cfg)
    assert cfg["split"] == {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 42}
    assert cfg["strict"] is False


def test_wrong_type_names_the_key(cfg):
    cfg["experiment_defaults"]["epochs"] = "five"
    expect_error(cfg, "experiment_defaults.epochs", "'five'")


def test_unknown_key_names_it_and_lists_allowed(cfg):
    cfg["experiments"]["liver_unet"]["epoch"] = 3
    expect_error(cfg, "'epoch'", "experiments.liver_unet", "epochs")


def test_unknown_top_level_key(cfg):
    cfg["experimnts"] = {}
    expect_error(cfg, "'experimnts'")


def test_unknown_model_and_loss(cfg):
    bad = copy.deepcopy(cfg)
    bad["experiments"]["liver_unet"]["model"] = {"name": "transformer9000"}
    expect_error(bad, "experiments.liver_unet.model.name", "transformer9000", "unet")
    bad = copy.deepcopy(cfg)
    bad["experiments"]["liver_unet"]["loss"] = {"name": "hinge"}
    expect_error(bad, "experiments.liver_unet.loss.name", "dice_ce")


def test_class_not_in_palette(cfg):
    cfg["experiments"]["liver_unet"]["classes"] = ["livr"]
    expect_error(cfg, "experiments.liver_unet.classes", "'livr'", "liver")


def test_background_is_not_an_organ(cfg):
    cfg["experiments"]["liver_unet"]["classes"] = ["background"]
    expect_error(cfg, "background")


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1])
def test_val_fraction_outside_open_interval(cfg, value):
    cfg["split"]["val_fraction"] = value
    expect_error(cfg, "split.val_fraction")


def test_class_weights_need_one_per_output_class(cfg):
    cfg["experiments"]["liver_unet"]["loss"] = {"class_weights": [0.5, 1.0, 3.0]}
    expect_error(cfg, "class_weights", "2 output classes")


def test_subject_pattern_needs_a_group(cfg):
    cfg["dataset"]["modalities"]["AUS"]["subject_pattern"] = r"^ct\d+-\d+$"
    expect_error(cfg, "dataset.modalities.AUS.subject_pattern", "capture group")


def test_invalid_regex(cfg):
    cfg["dataset"]["modalities"]["AUS"]["subject_pattern"] = "^(ct"
    expect_error(cfg, "subject_pattern", "regular expression")


def test_duplicate_palette_colour(cfg):
    cfg["dataset"]["classes"][2]["rgb"] = [100, 0, 100]
    expect_error(cfg, "share the colour")


def test_unknown_train_modality(cfg):
    cfg["experiments"]["liver_unet"]["train_modalities"] = ["CT"]
    expect_error(cfg, "train_modalities", "'CT'")


def test_image_size_must_fit_strides(cfg):
    cfg["experiments"]["liver_unet"]["image_size"] = [100, 100]
    expect_error(cfg, "image_size", "divisible")


def test_thresholds_must_be_ordered(cfg):
    cfg["diagnostics"]["min_labeled_target_subjects"] = {"warn_below": 3, "fail_below": 5}
    expect_error(cfg, "fail_below")


def test_missing_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_experiment_resolution_merges_defaults(cfg):
    check_config(cfg)
    exp = resolve_experiment(cfg, "multiorgan_unet_weighted")
    assert exp["loss"]["class_weights"] == "auto"
    assert exp["loss"]["name"] == cfg["experiment_defaults"]["loss"]["name"]
    assert exp["model"] == cfg["experiment_defaults"]["model"]


def test_binary_experiment_maps_other_organs_to_background(cfg):
    check_config(cfg)
    exp = Experiment.from_config(cfg, "liver_unet")
    assert exp.class_names(cfg["dataset"]) == ["background", "liver"]
    lut = exp.label_lookup(cfg["dataset"])
    assert lut.tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert exp.include_background(cfg["dataset"]) is False
    multi = Experiment.from_config(cfg, "multiorgan_unet")
    assert multi.include_background(cfg["dataset"]) is True


def test_an_experiment_is_a_typed_private_copy_of_its_settings(cfg):
    check_config(cfg)
    settings = resolve_experiment(cfg, "multiorgan_unet")
    exp = Experiment(settings)
    settings["epochs"] = 999  # the caller's mapping changing later does not change the experiment
    assert exp.epochs == cfg["experiment_defaults"]["epochs"] and isinstance(exp.image_size, tuple)
    assert exp.model.name == "unet" and exp.is_network and not exp.is_forest
    assert exp.remedy.name == "none"
    short = exp.with_settings(epochs=2, name="short")
    assert (short.epochs, short.name, exp.epochs, exp.name) == (2, "short", exp.epochs, "multiorgan_unet")
    # A mapping missing a required key is refused with the key named.
    with pytest.raises(ConfigError, match="experiments.x: missing .*epochs"):
        Experiment({k: v for k, v in settings.items() if k != "epochs"} | {"name": "x"})


def test_test_sets_follow_the_dataset_s_modalities(cfg):
    # Another dataset's modality names its test set; no code or schema change is needed.
    cfg["dataset"]["modalities"]["CT"] = dict(cfg["dataset"]["modalities"]["AUS"])
    cfg["test_sets"] = ["test_aus", "test_rus", "test_ct"]
    assert check_config(copy.deepcopy(cfg))["test_sets"][-1] == "test_ct"
    cfg["test_sets"] = ["test_aus", "test_mri"]
    expect_error(cfg, "test_sets", "'test_mri' names no modality", "test_aus, test_rus, test_ct")


def test_unknown_experiment_name(cfg):
    check_config(cfg)
    with pytest.raises(ConfigError, match="no experiment named"):
        resolve_experiment(cfg, "nope")


# ----------------------------------------------------------------------------- overlays and start-up checks


def test_an_overlay_replaces_the_experiments_and_merges_the_rest():
    from usseg.config import apply_overlay

    base = {"split": {"seed": 1, "val_fraction": 0.2}, "experiments": {"a": {"epochs": 1}, "b": {}}}
    merged = apply_overlay(base, {"split": {"seed": 2}, "experiments": {"c": {}}})
    assert merged["split"] == {"seed": 2, "val_fraction": 0.2}
    assert merged["experiments"] == {"c": {}}
    assert apply_overlay(base, {"strict": True})["experiments"] == base["experiments"]
    # The gap study's remedies too: a variant lists exactly the arms it runs; its other keys merge.
    base["gap_study"] = {"seeds": 3, "remedies": {"a": {"settings": {"epochs": 1}}, "b": {"settings": {}}}}
    merged = apply_overlay(base, {"gap_study": {"remedies": {"c": {"settings": {"epochs": 2}}}}})
    assert merged["gap_study"] == {"seeds": 3, "remedies": {"c": {"settings": {"epochs": 2}}}}
    assert apply_overlay(base, {"gap_study": {"seeds": 5}})["gap_study"]["remedies"] == base["gap_study"]["remedies"]


OWN_DATASET = {
    "classes": [{"name": "background", "rgb": [0, 0, 0]}, {"name": "liver", "rgb": [255, 0, 0]}],
    "modalities": {
        "sim": {"domain": "synthetic", "image_extensions": [".png"], "subject_pattern": r"^(s\d+)_\d+$"},
        "clinic": {"domain": "real", "image_extensions": [".jpg"], "subject_pattern": r"^(p\d+)_\d+$"},
    },
    "target_modality": "clinic",
}


def test_a_dataset_overlay_replaces_the_whole_section_and_the_derived_keys_follow(tmp_path):
    overlay = tmp_path / "mine.yaml"
    overlay.write_text(yaml.safe_dump({"dataset": OWN_DATASET, "data_root": "/data/mine"}, sort_keys=False))
    cfg = load_config(REPO / "config.yaml", overlay)
    assert list(cfg["dataset"]["modalities"]) == ["sim", "clinic"]  # no AUS/RUS merged in
    assert [c["name"] for c in cfg["dataset"]["classes"]] == ["background", "liver"]
    assert cfg["test_sets"] == ["test_sim", "test_clinic"]
    assert {tuple(resolve_experiment(cfg, e)["train_modalities"]) for e in cfg["experiments"]} == {("sim",)}
    assert cfg["nnunet"]["train_modalities"] == ["sim"]
    assert cfg["dataset"]["layout"] == "split_folders"


def test_config_yaml_s_organ_experiments_on_another_palette_say_what_to_do(tmp_path):
    overlay = tmp_path / "mine.yaml"
    dataset = copy.deepcopy(OWN_DATASET)
    dataset["classes"][1]["name"] = "cyst"
    overlay.write_text(yaml.safe_dump({"dataset": dataset}, sort_keys=False))
    with pytest.raises(ConfigError, match="experiments: section of your own"):
        load_config(REPO / "config.yaml", overlay)


def test_derived_keys_keep_what_is_given_explicitly(cfg):
    from usseg.config import trained_modalities

    cfg["dataset"] = copy.deepcopy(OWN_DATASET)
    cfg["experiments"] = {"a": {}, "b": {"train_modalities": ["sim", "clinic"]}}
    cfg["gap_study"]["baseline"] = "a"
    cfg["test_sets"] = ["test_clinic"]
    cfg["nnunet"] = {"enabled": False}
    check_config(cfg)
    assert cfg["test_sets"] == ["test_clinic"]
    assert resolve_experiment(cfg, "a")["train_modalities"] == ["sim"]
    assert resolve_experiment(cfg, "b")["train_modalities"] == ["sim", "clinic"]
    assert trained_modalities(cfg) == ["sim", "clinic"]


def test_a_single_modality_trains_on_itself(cfg):
    cfg["dataset"] = copy.deepcopy(OWN_DATASET)
    del cfg["dataset"]["modalities"]["sim"]
    cfg["experiments"] = {"a": {}}
    cfg["gap_study"]["baseline"] = "a"
    check_config(cfg)
    assert cfg["test_sets"] == ["test_clinic"] and cfg["nnunet"]["train_modalities"] == ["clinic"]
    assert resolve_experiment(cfg, "a")["train_modalities"] == ["clinic"]


def test_a_partial_dataset_overlay_says_it_replaces_the_whole_section(tmp_path):
    overlay = tmp_path / "mine.yaml"
    overlay.write_text(yaml.safe_dump({"dataset": {"decode": "nearest"}}))
    with pytest.raises(ConfigError, match="replaces config.yaml's whole dataset section"):
        load_config(REPO / "config.yaml", overlay)


def test_guesses_to_confirm_stop_the_run(cfg):
    cfg["dataset"]["guesses_to_confirm"] = ["target_modality: RUS"]
    expect_error(cfg, "guesses_to_confirm", "target_modality: RUS", "nothing runs on a guess")
    cfg["dataset"]["guesses_to_confirm"] = []
    check_config(cfg)


@pytest.mark.parametrize(
    ("folders", "fragment"),
    [({"AUS": "data", "RUS": "data"}, "both use the folder"), ({"AUS": "images"}, "names the images or masks"),
     ({"RUS": "../x"}, "leaves the")],
)
def test_modality_folders_must_be_distinct_and_inside_the_root(cfg, folders, fragment):
    for mod, folder in folders.items():
        cfg["dataset"]["modalities"][mod]["folder"] = folder
    expect_error(cfg, "dataset.modalities.", fragment)


def test_article_overlay_has_only_the_article_experiments_and_settings():
    cfg = load_config(REPO / "config.yaml", REPO / "configs" / "article.yaml")
    assert set(cfg["experiments"]) == {"liver_unet", "multiorgan_unet", "multiorgan_unet_weighted", "liver_rf"}
    assert cfg["gap_study"]["enabled"] and cfg["gap_study"]["seeds"] >= 3
    # Every remedy of usseg.remedies.spec is an arm of the study (the augmentation ones have remedy none),
    # and the overlay's remedies replace config.yaml's.
    from usseg.gap import study as gap
    from usseg.remedies.spec import REMEDIES

    arms = [a for a in gap.fixed_arms(cfg) if a.startswith("remedy_")]
    assert {gap.arm_experiment(cfg, a).remedy.name for a in arms} == set(REMEDIES)
    assert list(cfg["gap_study"]["remedies"]) == list(
        yaml.safe_load((REPO / "configs" / "article.yaml").read_text())["gap_study"]["remedies"])
    # config.yaml's liver_unet post-processes; the article's does not.
    assert Experiment.from_config(cfg, "liver_unet").largest_component is False
    tiny = load_config(REPO / "config.yaml", REPO / "configs" / "tiny.yaml")
    assert "multiorgan_unet" not in tiny["experiments"]


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("split", {"seed": "4"}, {"seed": 4}),
        ("split", {"val_fraction": "0.5"}, {"val_fraction": 0.5}),
        ("data_root", "null", None),
        ("strict", "true", True),
        ("experiment_defaults", {"image_size": ["64", "64"]}, {"image_size": [64, 64]}),
        ("experiments", {"multiorgan_unet_weighted": {"loss": {"class_weights": ["1"] * 8 + ["2.5"]}}},
         {"multiorgan_unet_weighted": {"loss": {"class_weights": [1] * 8 + [2.5]}}}),
    ],
)
def test_command_line_text_is_read_as_yaml_where_a_number_belongs(cfg, key, text, value):
    # What Snakemake hands over for `--config split={seed: 4}` or `--config data_root=null`.
    if isinstance(text, dict):
        cfg[key].update(text)
    else:
        cfg[key] = text
    check_config(cfg)
    if isinstance(value, dict):
        assert {k: cfg[key][k] for k in value} == value
    else:
        assert cfg[key] == value


def test_text_that_names_something_is_never_reinterpreted(cfg):
    cfg["report"] = {"title": "1"}
    cfg["dataset"]["modalities"]["AUS"]["subject_pattern"] = "^(1)$"
    check_config(cfg)
    assert cfg["report"]["title"] == "1"


@pytest.mark.parametrize(
    ("path", "text", "value"),
    [
        (("experiment_defaults", "optimizer", "lr"), "1e-3", 0.001),
        (("experiment_defaults", "optimizer", "weight_decay"), "5E-4", 0.0005),
        (("experiment_defaults", "epochs"), "2e1", 20),  # an integer key takes a whole number
    ],
)
def test_exponent_numbers_without_a_dot_are_read_with_a_note(cfg, capsys, path, text, value):
    # `lr: 1e-3` in a YAML file: YAML 1.1 (PyYAML) reads it as the text '1e-3'.
    layer = yaml.safe_load("lr: " + text)
    assert layer["lr"] == text
    node = cfg
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = text
    check_config(cfg)
    assert node[path[-1]] == value and type(node[path[-1]]) is type(value)
    note = capsys.readouterr().err
    assert ".".join(path) in note and repr(text) in note and ".0e" in note.lower()


def test_exponent_text_is_not_a_number_where_the_schema_wants_a_name(cfg, capsys):
    cfg["report"] = {"title": "1e-3"}
    cfg["experiment_defaults"]["epochs"] = "1.5e0"  # not whole: stays text and is refused
    expect_error(cfg, "experiment_defaults.epochs")
    cfg["experiment_defaults"]["epochs"] = 2
    check_config(cfg)
    assert cfg["report"]["title"] == "1e-3"


@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_an_empty_or_blank_data_root_is_an_error_not_the_demo(cfg, value):
    cfg["data_root"] = value
    expect_error(cfg, "data_root", "is empty", "null")


def test_an_empty_data_root_on_the_command_line_is_an_error():
    from usseg.config import check_data_root_arguments

    check_data_root_arguments(["data_root=null", "data_root=/data", "split={seed: 4}"])
    check_data_root_arguments(None)
    for args in (["data_root="], ["strict=true", "data_root=  "]):
        with pytest.raises(ConfigError, match="data_root= gives data_root no value"):
            check_data_root_arguments(args)


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("split", "seed"), -1, "split.seed: -1 is less than the minimum of 0"),
        (("experiment_defaults", "optimizer", "lr"), float("nan"), "experiment_defaults.optimizer.lr = nan"),
        (("experiment_defaults", "optimizer", "lr"), float("inf"), "experiment_defaults.optimizer.lr = inf"),
        (("diagnostics", "rare_class_pixel_share"), float("-inf"), "diagnostics.rare_class_pixel_share"),
        (("experiment_defaults", "seed"), 2**40, "experiment_defaults.seed"),
    ],
)
def test_non_finite_and_out_of_range_numbers_stop_at_start_up(cfg, path, value, fragment):
    node = cfg
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    expect_error(cfg, fragment)


def test_a_name_too_long_for_a_file_name_stops_at_start_up(cfg):
    long_name = "x" * 300
    cfg["experiments"][long_name] = {}
    message = expect_error(cfg, "experiments", "Use a shorter name")
    assert "300 bytes" in message


def test_name_length_limit_leaves_room_for_the_suffix(cfg):
    from usseg.config import check_name_lengths

    cfg["experiments"] = {"a" * 20: {}}
    cfg["gap_study"]["remedies"] = {}
    check_name_lengths(cfg, "config.yaml", name_max=29)  # aaa...a.json.tmp: 20 + 9 bytes
    with pytest.raises(ConfigError, match="leaves 19"):
        check_name_lengths(cfg, "config.yaml", name_max=28)
    # A remedy's key names its arm's log, results/logs/gap/arm_remedy_{key}.log.
    cfg["gap_study"]["remedies"] = {"b" * 20: {"settings": {"epochs": 1}}}
    with pytest.raises(ConfigError, match="gap_study.remedies.*arm_remedy_NAME.log"):
        check_name_lengths(cfg, "config.yaml", name_max=30)


# ----------------------------------------------------------------------------- remedies and the gap study


def test_remedy_settings_are_checked(cfg):
    cfg["experiments"]["multiorgan_unet"] = {"remedy": {"name": "fda", "beta": 0.9}}
    expect_error(cfg, "experiments.multiorgan_unet")
    cfg["experiments"]["multiorgan_unet"] = {"remedy": {"name": "fda", "threshold": 0.5}}
    expect_error(cfg, "experiments.multiorgan_unet.remedy", "threshold", "fda")


def test_semi_supervised_remedies_are_accepted(cfg):
    cfg["experiments"]["multiorgan_unet"] = {"remedy": {"name": "mean_teacher", "rampup_epochs": 2}}
    cfg["experiments"]["multiorgan_unet_weighted"] = {"remedy": {"name": "pseudo_label", "self_training_epochs": 2}}
    checked = check_config(cfg)
    assert checked["experiments"]["multiorgan_unet"]["remedy"]["name"] == "mean_teacher"
    cfg["experiments"]["multiorgan_unet"] = {"remedy": {"name": "mean_teacher", "self_training_epochs": 2}}
    expect_error(cfg, "experiments.multiorgan_unet.remedy", "self_training_epochs", "mean_teacher")


def test_bn_adapt_needs_batch_norm(cfg):
    cfg["experiments"]["liver_rf"]["remedy"] = {"name": "bn_adapt"}
    expect_error(cfg, "experiments.liver_rf.remedy", "random forest")
    cfg["experiments"]["liver_rf"] = {"classes": ["liver"], "model": {"norm": "instance"}, "remedy": {"name": "bn_adapt"}}
    expect_error(cfg, "experiments.liver_rf.remedy", "batch")


def test_ultrasound_augmentation_keys_are_checked(cfg):
    cfg["experiments"]["multiorgan_unet"] = {"augmentation": {"ultrasound": {"haze": {"looks": 4}}}}
    expect_error(cfg, "augmentation.ultrasound.haze", "looks")
    cfg["experiments"]["multiorgan_unet"] = {"augmentation": {"ultrasound": {"echo": {}}}}
    expect_error(cfg, "echo")


def test_gap_study_baseline_must_be_an_experiment(cfg):
    cfg["gap_study"] = {"enabled": True, "baseline": "nope"}
    expect_error(cfg, "gap_study.baseline", "nope", "multiorgan_unet")
    cfg["gap_study"] = {"enabled": True, "baseline": "liver_rf"}
    expect_error(cfg, "gap_study.baseline", "random forest")


def test_the_default_study_measures_every_remedy_family(cfg):
    """config.yaml's study: families 1-5 of docs/remedies.md as remedies (6 and 7 are LOSO and the curve),
    plus class weights; at least six remedies, three seeds."""
    from usseg.gap import study as gap

    check_config(cfg)
    remedies = {r: gap.arm_experiment(cfg, f"remedy_{r}") for r in cfg["gap_study"]["remedies"]}
    names = {e.remedy.name for e in remedies.values()}
    assert {"fov_normalise", "bn_adapt"} <= names and names & {"histogram_matching", "fda"}
    assert names & {"pseudo_label", "mean_teacher"}
    assert any(e.augmentation.get("ultrasound") for e in remedies.values())
    assert any(e.loss.class_weights != "none" for e in remedies.values())
    assert len(remedies) >= 6 and cfg["gap_study"]["seeds"] >= 3
    assert cfg["gap_study"]["loso"] and len(cfg["gap_study"]["learning_curve_fractions"]) >= 2
    assert all(r.get("title") for r in cfg["gap_study"]["remedies"].values())


def test_gap_study_remedies_are_checked(cfg):
    cfg["gap_study"]["remedies"] = {"x": {"title": "X", "settings": {"remedy": {"name": "fda", "beta": 0.9}}}}
    expect_error(cfg, "gap_study.remedies.x.settings.remedy.beta")
    cfg["gap_study"]["remedies"] = {"x": {"settings": {"seed": 3}}}
    expect_error(cfg, "gap_study.remedies.x.settings", "seed", "gap_study.seeds")
    cfg["gap_study"]["remedies"] = {"x": {"settings": {"epochs": 3}, "label": "X"}}
    expect_error(cfg, "label")
    cfg["gap_study"]["remedies"] = {"x": {"settings": {"model": {"norm": "instance"}, "remedy": {"name": "bn_adapt"}}}}
    expect_error(cfg, "gap_study.remedies.x.settings.remedy", "batch")
    cfg["gap_study"]["remedies"] = {"x": {"settings": {"epochs": 3}}}
    cfg["gap_study"]["seeds"] = 0
    expect_error(cfg, "gap_study.seeds")


def test_gap_study_fractions_must_increase(cfg):
    cfg["gap_study"] = {"learning_curve_fractions": [0.5, 0.25]}
    expect_error(cfg, "gap_study.learning_curve_fractions")
