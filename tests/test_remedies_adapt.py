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


def _toy_problem():
    """Bright pixels are class 1: a 1x1-conv network learns it in a few steps."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(4, 1, 8, 8, generator=gen)
    labels = (images > 0.5).float()
    unlabeled = torch.rand(4, 8, 8, generator=gen) * 0.8 + 0.2  # a brighter 'target domain'
    return images, labels, unlabeled


def _ce(logits, labels):
    return torch.nn.functional.cross_entropy(logits, labels[:, 0].long())


def test_self_training_step_learns_and_uses_the_pseudo_labels():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Conv2d(1, 4, 1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    opt = torch.optim.Adam(student.parameters(), lr=0.1)
    images, labels, unlabeled = _toy_problem()
    # A teacher that knows the rule, confident on all but the pixels near the threshold.
    probs = torch.stack([1 - (unlabeled > 0.5).float(), (unlabeled > 0.5).float()], 1) * 0.9 + 0.05
    probs[:, :, (unlabeled - 0.5).abs()[0] < 0.05] = 0.5
    pseudo, kept = semi.pseudo_labels(probs, threshold=0.9)
    assert 0 < kept.mean() < 1
    first = semi.self_training_step(student, opt, _ce, images, labels, unlabeled, pseudo, weight=0.5)
    assert first["loss"] == pytest.approx(first["supervised"] + 0.5 * first["pseudo_label"], rel=1e-5)
    for _ in range(12):
        last = semi.self_training_step(student, opt, _ce, images, labels, unlabeled, pseudo, weight=0.5)
    assert last["supervised"] < 0.7 * first["supervised"] and last["pseudo_label"] < 0.7 * first["pseudo_label"]


def test_mean_teacher_step_trains_the_student_and_moves_the_teacher_by_ema():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Conv2d(1, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    teacher = semi.make_teacher(student)
    opt = torch.optim.Adam(student.parameters(), lr=0.1)
    images, labels, unlabeled = _toy_problem()
    gen = torch.Generator().manual_seed(1)
    before = [p.clone() for p in teacher.parameters()]
    first = semi.mean_teacher_step(student, teacher, opt, _ce, images, labels, unlabeled, 1.0, 0.9, generator=gen)
    # After one step the teacher is 0.9 old + 0.1 student, parameter by parameter.
    for t, b, s in zip(teacher.parameters(), before, student.parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * s)
        assert not t.requires_grad
    for _ in range(12):
        last = semi.mean_teacher_step(student, teacher, opt, _ce, images, labels, unlabeled, 1.0, 0.9, generator=gen)
    assert last["supervised"] < 0.7 * first["supervised"] and last["consistency"] >= 0
