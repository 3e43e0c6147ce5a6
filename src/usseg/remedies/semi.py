"""Semi-supervised learning on unlabeled target frames (remedy 5).

Two standard recipes, as building blocks of their training loops (usseg.training.semi):

- Pseudo-label self-training (Lee, "Pseudo-label", 2013): a teacher's
  softmax on an unlabeled frame gives a label per pixel, kept only where the
  teacher is confident (max probability >= threshold); the other pixels get
  `IGNORE` and do not enter the loss (`pseudo_label_loss`).
- Mean teacher (Tarvainen & Valpola, NeurIPS 2017): the teacher's weights are
  an exponential moving average of the student's,
  ``theta_t <- decay * theta_t + (1 - decay) * theta_s`` after every step, and
  the student is pulled towards the teacher's predictions on unlabeled frames
  with a consistency loss (mean squared difference of the softmaxes) whose
  weight ramps up as ``exp(-5 (1 - t)^2)`` (Laine & Aila, 2017).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from usseg.errors import ConfigError

# Label value of pixels left out of the pseudo-label loss (labels are uint8 class indices).
IGNORE = 255


def check_threshold(threshold: float, where: str = "remedy.threshold") -> float:
    if not 0.0 <= float(threshold) <= 1.0:
        raise ConfigError(f"{where} = {threshold} must lie in [0, 1] (a softmax probability).")
    return float(threshold)


def pseudo_labels(probs, threshold: float = 0.9, ignore_index: int = IGNORE) -> tuple[np.ndarray, np.ndarray]:
    """Confidence-thresholded pseudo-labels from softmax probabilities.

    probs: (N, C, H, W) or (C, H, W) softmax output (each pixel's probabilities sum to 1).
    Returns (labels uint8 with `ignore_index` where max probability < threshold, the kept mask).
    """
    check_threshold(threshold, "pseudo_labels: threshold")
    p = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    p = p.astype(np.float32, copy=False)
    if p.ndim not in (3, 4):
        raise ValueError(f"pseudo_labels: expected (N, C, H, W) or (C, H, W) probabilities, got shape {p.shape}.")
    axis = p.ndim - 3
    if p.shape[axis] >= ignore_index:
        raise ValueError(f"pseudo_labels: {p.shape[axis]} classes collide with ignore_index {ignore_index}.")
    sums = p.sum(axis=axis)
    if p.min() < -1e-6 or np.abs(sums - 1).max() > 1e-3:
        raise ValueError(
            "pseudo_labels: the input is not softmax probabilities (values below 0 or pixels not summing to 1); "
            "apply torch.softmax(logits, dim=1) first."
        )
    labels = p.argmax(axis=axis).astype(np.uint8)
    kept = p.max(axis=axis) >= threshold
    labels[~kept] = ignore_index
    return labels, kept


def pseudo_label_loss(logits: torch.Tensor, labels, ignore_index: int = IGNORE) -> torch.Tensor:
    """Cross-entropy of the student's logits (N, C, H, W) against pseudo-labels (N, H, W), ignored pixels left out.

    With every pixel ignored the loss is 0 (still attached to the graph), not NaN.
    """
    target = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    target = target.to(device=logits.device, dtype=torch.long)
    if target.ndim == logits.ndim:  # (N, 1, H, W) as usseg's label tensors are
        target = target[:, 0]
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


# ----------------------------------------------------------------------------- mean teacher


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of the student to start the mean teacher from."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float = 0.99) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, for parameters and floating buffers.

    Integer buffers (batch-norm's num_batches_tracked) are copied. The two
    networks must have the same architecture.
    """
    if not 0.0 <= float(decay) <= 1.0:
        raise ConfigError(f"remedy.ema_decay = {decay} must lie in [0, 1].")
    t_state, s_state = teacher.state_dict(), student.state_dict()
    if t_state.keys() != s_state.keys():
        raise ValueError("ema_update: teacher and student have different architectures.")
    for name, t in t_state.items():
        s = s_state[name]
        if t.dtype.is_floating_point:
            t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
        else:
            t.copy_(s)


def consistency_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the student's and the (detached) teacher's softmax."""
    return F.mse_loss(torch.softmax(student_logits, dim=1), torch.softmax(teacher_logits.detach(), dim=1))


def sigmoid_rampup(step: float, length: float) -> float:
    """exp(-5 (1 - t)^2) with t = step / length clipped to [0, 1]; 1 when length is 0."""
    if length <= 0:
        return 1.0
    t = float(np.clip(step / length, 0.0, 1.0))
    return float(np.exp(-5.0 * (1.0 - t) ** 2))


# ----------------------------------------------------------------------------- training steps


def _as_input(x, device) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float32)
    return (x[:, None] if x.ndim == 3 else x).to(device)


def self_training_step(student: nn.Module, optimizer: torch.optim.Optimizer, supervised_loss, images, labels,
                       unlabeled, pseudo, weight: float = 1.0) -> dict:
    """One optimisation step on a labeled batch plus a pseudo-labeled batch of target frames.

    supervised_loss(logits, labels) is the experiment's loss (e.g. MONAI DiceCELoss with
    labels (N, 1, H, W)); pseudo: (N, H, W) pseudo-labels from `pseudo_labels`.
    Returns the three loss values.
    """
    device = next(student.parameters()).device
    student.train()
    optimizer.zero_grad(set_to_none=True)
    sup = supervised_loss(student(_as_input(images, device)), torch.as_tensor(labels).to(device))
    pl = pseudo_label_loss(student(_as_input(unlabeled, device)), pseudo)
    loss = sup + float(weight) * pl
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach()), "supervised": float(sup.detach()), "pseudo_label": float(pl.detach())}


def mean_teacher_step(student: nn.Module, teacher: nn.Module, optimizer: torch.optim.Optimizer, supervised_loss,
                      images, labels, unlabeled, consistency_weight: float, ema_decay: float = 0.99,
                      noise_std: float = 0.05, generator: torch.Generator | None = None) -> dict:
    """One mean-teacher step: supervised loss + weighted consistency on unlabeled frames, then the EMA update.

    The student sees the unlabeled frames with Gaussian noise (sd noise_std, from `generator`),
    the teacher sees them clean; only the student is optimised. consistency_weight already
    includes the ramp (`sigmoid_rampup`).
    """
    device = next(student.parameters()).device
    student.train()
    teacher.train()  # batch-norm in the teacher follows the batch, as in Tarvainen & Valpola's code
    optimizer.zero_grad(set_to_none=True)
    sup = supervised_loss(student(_as_input(images, device)), torch.as_tensor(labels).to(device))
    x_u = _as_input(unlabeled, device)
    noise = torch.randn(x_u.shape, generator=generator).to(device) * float(noise_std)
    with torch.no_grad():
        teacher_logits = teacher(x_u)
    cons = consistency_loss(student(x_u + noise), teacher_logits)
    loss = sup + float(consistency_weight) * cons
    loss.backward()
    optimizer.step()
    ema_update(teacher, student, ema_decay)
    return {"loss": float(loss.detach()), "supervised": float(sup.detach()), "consistency": float(cons.detach())}
