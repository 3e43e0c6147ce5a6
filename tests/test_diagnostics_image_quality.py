"""Image quality: dark, over-bright, blurry and low-information frames inside the field of view are flagged."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from test_diagnostics_fixtures import CLEAN, DATASET_CFG, DIAG_CFG, make_frames, write_dataset
from usseg.diagnostics.image_quality import DEFAULTS, check_image_quality, quality_scores
from usseg.diagnostics.inputs import load_inputs
from usseg.diagnostics.survey import survey_images
from usseg.fov import field_of_view


@pytest.fixture(scope="module")
def frames():
    return make_frames(CLEAN, same_style=True)


def test_scores_inside_the_field_of_view(frames):
    img = frames[0].image
    s = quality_scores(img, field_of_view(img, 12))
    assert 0 < s["p5"] < s["p95"] < 1 and s["entropy_bits"] > 4 and s["sharpness"] > 0
    # the black frame around the fan does not make a frame dark
    assert s["p95"] > DEFAULTS["dark_p95_below"]
    empty = quality_scores(np.zeros((64, 64), np.uint8), np.zeros((64, 64), bool))
    assert empty["fov_fraction"] == 0 and np.isnan(empty["p95"])


def test_planted_bad_frames_are_flagged_and_shown(tmp_path, frames):
    frames = [f for f in frames]  # the fixture's frames are copied by write_dataset's reads only
    planted = {}
    by_id = {f.image_id: f for f in frames}
    fan = frames[0].image > 12

    def plant(iid, image, kind):
        f = by_id[iid]
        f.image = np.where(fan, image, 0).astype(np.uint8)
        planted[iid] = kind

    img = by_id["RUS_train_c1"].image.astype(float)
    plant("RUS_train_c1", np.clip(img * 0.15, 13, 255), "dark")
    plant("RUS_train_d1", np.clip(img * 0.3 + 215, 0, 255), "over_bright")
    plant("RUS_train_e1", ndi.gaussian_filter(by_id["RUS_train_e1"].image.astype(float), 2.5), "blurry")
    plant("AUS_train_ct1-1", np.full(img.shape, 90.0), "low_information")
    fx = write_dataset(tmp_path, frames)
    fx.out_dir.mkdir(parents=True)
    inputs = load_inputs(
        DATASET_CFG, DIAG_CFG, fx.root, fx.manifest_csv, fx.issues_csv, fx.labels_dir, fx.splits_csv
    )
    result = check_image_quality(inputs, survey_images(inputs, 400, 0, 12), fx.outputs)
    table = pd.read_csv(fx.out_dir / "image_quality.csv", keep_default_na=False)
    flagged = table[table["flags"] != ""].set_index("image_id")["flags"].to_dict()
    assert flagged == planted
    share = len(planted) / len(table)
    assert result.value == pytest.approx(share, abs=1e-4)
    assert result.status == "WARN"  # 4 of 110 images: above 1 %, below 10 %
    assert "4 of 110 images flagged" in result.reason
    assert (fx.out_dir / "image_quality.png").stat().st_size > 10_000
