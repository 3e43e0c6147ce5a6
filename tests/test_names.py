"""One human name per experiment, remedy, test set and class; table columns in words (usseg.names)."""

from __future__ import annotations

from usseg.names import Names, column

CONFIG = {
    "dataset": {"modalities": {"AUS": {"domain": "synthetic"}, "RUS": {"domain": "real"}}},
    "report": {"names": {"experiments": {"multiorgan_unet": "Multi-organ U-Net"},
                         "classes": {"gallbladder": "gall bladder"}}},
}


def test_names_come_from_the_config_else_from_what_the_config_knows():
    names = Names(CONFIG)
    assert names.experiment("multiorgan_unet").text == "Multi-organ U-Net"
    assert names.experiment("multiorgan_unet").key == "multiorgan_unet" and names.experiment("multiorgan_unet").differs
    assert names.experiment("other").text == "other" and not names.experiment("other").differs
    assert names.test_set("test_rus").text == "RUS test set (real)"
    assert names.test_set("test_aus").text == "AUS test set (simulator)"
    assert names.test_set("MedSegBench test split").text == "MedSegBench test split"
    assert names.class_("gallbladder").text == "gall bladder" and names.class_("liver").text == "liver"
    # a remedy is its gap_study title; leave-one-subject-out has one of its own; report.names may rename either
    assert names.remedy("multiorgan_unet").text == "Multi-organ U-Net"  # not a remedy: an experiment's name
    titled = Names({**CONFIG, "gap_study": {"remedies": {"cw": {"title": "Class weights", "settings": {"epochs": 1}}}}})
    assert titled.remedy("cw").text == "Class weights" and titled.remedy("cw").key == "cw"
    assert names.remedy("loso_real_labels").text.startswith("Adding labeled real subjects")
    renamed = Names({**CONFIG, "report": {"names": {"remedies": {"loso_real_labels": "more real labels"}}}})
    assert renamed.remedy("loso_real_labels").text == "more real labels"
    assert Names({}).experiment("x").text == "x"  # a config without report.names


def test_columns_in_words():
    assert column("n_images_with_class") == "images with the class"
    assert column("pixel_share") == "share of all labeled pixels"
    assert column("n_new_things") == "number of new things"  # not listed: derived, never the raw name
    assert column("some_field") == "some field"
