"""`python -m usseg.describe`: a folder in any layout becomes a dataset description to confirm."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO
from datasets import confirmed, make_dataset, make_own_dataset, write_image
from usseg.config import load_config
from usseg.describe import describe, infer_subject_pattern, main
from usseg.errors import ConfigError
from usseg.manifest import build_manifest


def _load(tmp_path, text, name="mine.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_config(REPO / "config.yaml", path)


def _accounted(cfg):
    """The manifest of the described data: every image parsed, nothing in an unexpected place."""
    manifest, issues = build_manifest(cfg["data_root"], cfg["dataset"])
    assert not set(issues["reason"]) & {"name_mismatch", "unexpected_location", "unexpected_extension"}, issues
    return manifest, issues


def test_renamed_modality_folders_are_described_with_their_colours_and_blends(tmp_path):
    text = describe(make_own_dataset(tmp_path / "data", "renamed"))
    overlay = yaml.safe_load(text)
    ds = overlay["dataset"]
    assert list(ds["modalities"]) == ["clinic", "sim"] and ds["annotations_dir"] == "masks"
    assert ds["layout"] == "split_folders" and ds["test_split"] == "test"
    assert [c["rgb"] for c in ds["classes"]] == [[0, 0, 0], [220, 40, 40], [40, 200, 60]]
    assert ds["mask_encoding"] == "palette" and ds["modalities"]["clinic"]["image_extensions"] == [".jpg"]
    assert "lie between two classes: anti-aliased borders" in text and "background/class_1" in text
    assert overlay["test_sets"] == ["test_clinic", "test_sim"]
    assert "8 subjects from 22 images" in text  # sim: s01..s08
    # Nothing runs on a guess: the description is refused until its guesses are confirmed.
    assert "target_modality: clinic" in ds["guesses_to_confirm"]
    with pytest.raises(ConfigError, match="guesses_to_confirm"):
        _load(tmp_path, text)
    cfg = _load(tmp_path, confirmed(text))
    assert cfg["experiment_defaults"]["train_modalities"] == ["sim"]
    manifest, _ = _accounted(cfg)
    assert len(manifest) == 36 and set(manifest["modality"]) == {"sim", "clinic"}


def test_a_flat_images_and_labels_folder_with_class_indices(tmp_path):
    folder = make_own_dataset(tmp_path / "data", "flat_index")
    text = describe(folder)
    ds = yaml.safe_load(text)["dataset"]
    assert ds["layout"] == "flat" and ds["annotations_dir"] == "labels" and ds["mask_encoding"] == "index"
    (name, mod), = ds["modalities"].items()
    assert mod["folder"] == "." and name == "ultrasound_study"
    assert len(ds["classes"]) == 3 and "index 2:" in text
    cfg = _load(tmp_path, confirmed(text))
    manifest, _ = _accounted(cfg)
    assert len(manifest) == 24 and manifest["has_mask"].all() and set(manifest["orig_split"]) == {"all"}


def test_the_reference_layout_is_described_as_it_is(tmp_path):
    make_dataset(tmp_path / "data")  # nested as the Kaggle download
    text = describe(tmp_path / "data")
    ds = yaml.safe_load(text)["dataset"]
    assert list(ds["modalities"]) == ["AUS", "RUS"] and ds["annotations_dir"] == "annotations"
    # config.yaml's palette names the reference's colours.
    assert [c["name"] for c in ds["classes"]] == ["background", "liver", "kidney"]
    cfg = _load(tmp_path, confirmed(text))
    _accounted(cfg)


def test_names_no_pattern_groups_are_each_their_own_subject_marked_as_a_guess(tmp_path):
    for name in ("alpha", "bravo", "charlie"):
        write_image(tmp_path / "data" / "images" / f"{name}.png")
    text = describe(tmp_path / "data")
    assert "every image is its own subject" in text
    assert any("subject_pattern" in g for g in yaml.safe_load(text)["dataset"]["guesses_to_confirm"])


@pytest.mark.parametrize(
    ("stems", "subjects"),
    [(["ct14-1", "ct14-2", "ct3-1"], {"ct14", "ct3"}), (["a1", "a12", "b3"], {"a", "b"}),
     (["patient_01_frame_003", "patient_01_frame_004", "patient_02_frame_001"], {"patient_01", "patient_02"}),
     (["P7 12", "P7 13", "P8 1"], {"P7", "P8"})],
)
def test_subject_patterns_parse_every_name(stems, subjects):
    import re

    pattern, _, parses = infer_subject_pattern(stems)
    assert parses and {re.match(pattern, s).group(1) for s in stems} == subjects


def test_the_command_writes_the_description_and_never_overwrites(tmp_path, capsys):
    folder = make_own_dataset(tmp_path / "data", "flat_index")
    out = tmp_path / "mine.yaml"
    assert main([str(folder), "-o", str(out)]) == 0
    assert "guesses_to_confirm" in out.read_text() and "--configfile" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(folder), "-o", str(out)])
    assert main([str(folder), "-o", str(out), "--force"]) == 0
