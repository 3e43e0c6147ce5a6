"""Remedies 4 and 5: batch-norm test-time adaptation, pseudo-labels and the mean teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from usseg.errors import DataError, UssegError
from usseg.models import NetworkPredictor, build_network
from usseg.remedies import semi, tta


def _tiny_bn_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2), nn.ReLU(), nn.Conv2d(2, 3, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
    return net.eval()


def test_adapt_batchnorm_re_estimates_statistics_and_leaves_the_original():
    net = _tiny_bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = np.random.default_rng(0)
    target = rng.normal(0.7, 0.1, size=(10, 8, 8)).astype(np.float32)
    adapted = tta.adapt_batchnorm(net, tta.image_batches(target, 4))
    # The original is untouched.
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    bn = adapted[1]
    # Channel c sees (c + 1) * x: its running mean is (c + 1) * the target mean, whatever the batching.
    np.testing.assert_allclose(bn.running_mean.numpy(), [target.mean(), 2 * target.mean()], rtol=1e-4)
    assert bn.running_var[0].item() == pytest.approx(target.var(), rel=0.1)
    assert bn.momentum == net[1].momentum and not adapted.training and not bn.training
    # Weights are unchanged.
    assert torch.equal(adapted[0].weight, net[0].weight) and torch.equal(adapted[3].bias, net[3].bias)


def test_adapt_batchnorm_errors():
    with pytest.raises(UssegError, match="no batch-norm"):
        tta.adapt_batchnorm(nn.Sequential(nn.Conv2d(1, 1, 1), nn.InstanceNorm2d(1)), [np.zeros((2, 4, 4))])
    with pytest.raises(DataError, match="at least 2"):
        tta.adapt_batchnorm(_tiny_bn_net(), [np.zeros((1, 4, 4))])
    with pytest.raises(ValueError, match="batch_size"):
        tta.image_batches(np.zeros((3, 4, 4)), 1)
    assert [len(b) for b in tta.image_batches(np.zeros((9, 4, 4)), 4)] == [4, 5]


def test_adapt_predictor_on_the_project_unet():
    cfg = {"name": "unet", "channels": [4, 8], "strides": [2], "num_res_units": 0, "norm": "batch"}
    net = build_network(cfg, 3, (16, 16))
    meta = {"class_names": ["background", "a", "b"], "image_size": [16, 16], "experiment": "x", "model": cfg}
    pred = NetworkPredictor(net, meta, torch.device("cpu"))
    images = np.random.default_rng(1).uniform(0.5, 1.0, size=(6, 16, 16)).astype(np.float32)
    reference = pred.predict_proba(images)
    adapted = tta.adapt_predictor(pred, images, batch_size=3)
    probs = adapted.predict_proba(images)
    assert probs.shape == (6, 3, 16, 16)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert not np.allclose(probs, reference)  # statistics changed, so did the prediction
    np.testing.assert_array_equal(pred.predict_proba(images), reference)  # the original predicts as before


# ----------------------------------------------------------------------------- semi-supervised


def test_pseudo_labels_threshold_and_ignore():
    probs = np.array([[[[0.95, 0.5]], [[0.03, 0.3]], [[0.02, 0.2]]]], np.float32)  # (1, 3, 1, 2)
    labels, kept = semi.pseudo_labels(probs, threshold=0.9)
    assert labels.dtype == np.uint8 and labels.shape == (1, 1, 2)
    assert labels.tolist() == [[[0, semi.IGNORE]]] and kept.tolist() == [[[True, False]]]
    labels, kept = semi.pseudo_labels(torch.as_tensor(probs[0]), threshold=0.4)
    assert labels.tolist() == [[0, 0]] and kept.all()
    with pytest.raises(ValueError, match="softmax"):
        semi.pseudo_labels(probs * 3)
    with pytest.raises(Exception, match="threshold"):
        semi.pseudo_labels(probs, threshold=1.5)


def test_pseudo_label_loss_ignores_marked_pixels():
    logits = torch.zeros(1, 3, 1, 2, requires_grad=True)
    with torch.no_grad():
        logits[0, 1, 0, 1] = 5.0
    labels = np.array([[[1, semi.IGNORE]]], np.uint8)
    loss = semi.pseudo_label_loss(logits, labels)
    assert loss.item() == pytest.approx(np.log(3.0), rel=1e-5)  # only the first pixel counts
    loss.backward()
    assert logits.grad[0, :, 0, 1].abs().sum() == 0
    empty = semi.pseudo_label_loss(logits, np.full((1, 1, 2), semi.IGNORE, np.uint8))
    assert empty.item() == 0 and empty.requires_grad


def test_mean_teacher_ema_update_and_rampup():
    student = _tiny_bn_net()
    teacher = semi.make_teacher(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    semi.ema_update(teacher, student, decay=0.9)
    for k, v in teacher.state_dict().items():
        s = student.state_dict()[k]
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, 0.9 * before[k] + 0.1 * s)
        else:
            assert torch.equal(v, s)
    assert semi.sigmoid_rampup(0, 10) == pytest.approx(np.exp(-5))
    assert semi.sigmoid_rampup(10, 10) == 1.0 == semi.sigmoid_rampup(3, 0)
    s_logits, t_logits = torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 3, 4, 4)
    assert semi.consistency_loss(t_logits, t_logits).item() == 0
    loss = semi.consistency_loss(s_logits, t_logits)
    loss.backward()
    assert loss.item() > 0 and s_logits.grad is not None
