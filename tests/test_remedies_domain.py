"""The domain classifier's AUC before and after a remedy's harmonisation."""

from __future__ import annotations

import numpy as np
import pytest

from datasets import fan_frame
from usseg.remedies import domain_check, spec, style, transforms


def _domain(scale, offset, first_seed, n_subjects=6, per_subject=2):
    """Frames of one 'scanner': the same kind of anatomy and speckle under another gain and offset."""
    images, subjects = [], []
    for s in range(n_subjects):
        for k in range(per_subject):
            frame = fan_frame(48, seed=first_seed + 10 * s + k)[0][0]
            images.append(np.where(frame > 0, offset + scale * frame, 0.0).astype(np.float32))
            subjects.append(f"s{s}")
    return np.stack(images), subjects


@pytest.fixture(scope="module")
def domains():
    return _domain(1.0, 0.0, 0), _domain(0.5, 0.3, 1000)


def test_domains_apart_before_and_closer_after_normalisation(domains):
    (src, src_subj), (tgt, tgt_subj) = domains
    norm = transforms.harmonisers(spec.FovNormalisation())
    out = domain_check.domain_auc(src, src_subj, tgt, tgt_subj, *norm, folds=3)
    assert out["before"]["possible"] and out["before"]["auc"] > 0.95
    lo, hi = out["before"]["ci95"]
    assert lo <= out["before"]["auc"] <= hi
    assert out["after"]["auc"] < out["before"]["auc"] - 0.2
    assert out["n_source_subjects"] == 6 and out["n_target_subjects"] == 6 and out["n_images"] == 24
    assert domain_check.domain_auc(src, src_subj, tgt, tgt_subj, folds=3)["after"] is None


def test_histogram_matching_harmoniser_restyles_the_source_only(domains):
    (src, src_subj), (tgt, tgt_subj) = domains
    bank = style.TargetBank.from_images(tgt)
    source_fn, target_fn = transforms.harmonisers(spec.HistogramMatching(reference="pooled"), bank, seed=0)
    assert target_fn is None
    restyled = source_fn(src)
    assert restyled.shape == src.shape and restyled.min() >= 0 and restyled.max() <= 1
    np.testing.assert_array_equal(source_fn(src), restyled)  # seeded
    out = domain_check.domain_auc(src, src_subj, tgt, tgt_subj, source_fn, None, folds=3)
    assert out["after"]["auc"] < out["before"]["auc"] - 0.2
    assert transforms.harmonisers(spec.BatchNormAdaptation()) is None


def test_domain_auc_checks_its_inputs(domains):
    (src, src_subj), (tgt, tgt_subj) = domains
    with pytest.raises(ValueError, match="one subject per image"):
        domain_check.domain_auc(src, src_subj[:-1], tgt, tgt_subj)
    with pytest.raises(ValueError, match="changed the shape"):
        domain_check.domain_auc(src, src_subj, tgt, tgt_subj, lambda x: x[:, :10], folds=3)
    one = domain_check.domain_auc(src, ["a"] * len(src), tgt, tgt_subj, folds=3)
    assert not one["before"]["possible"] and "2 subjects" in one["before"]["why"]
