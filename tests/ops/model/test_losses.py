"""The 3D losses: Lovasz-softmax equals the Jaccard loss at hard predictions, 255 is ignored everywhere,
class weights favour rare classes."""

import numpy as np
import pytest
import torch

from ops.model.losses import OccupancyLoss, class_weights, lovasz_softmax


def test_lovasz_equals_one_minus_iou_for_hard_predictions():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (2, 6, 7, 3), generator=g)
    labels[0, 0] = 255
    pred = torch.where(
        torch.rand(labels.shape, generator=g) < 0.7, labels.clamp(max=4), torch.randint(0, 5, labels.shape, generator=g)
    )
    probs = torch.nn.functional.one_hot(pred, 5).movedim(-1, 1).float()
    keep = labels != 255
    ious = []
    for c in labels[keep].unique():
        p, y = (pred == c) & keep, (labels == c) & keep
        ious.append((p & y).sum().item() / (p | y).sum().item())
    assert lovasz_softmax(probs, labels).item() == pytest.approx(1 - np.mean(ious), abs=1e-6)


def test_perfect_prediction_has_zero_lovasz_and_ignored_voxels_do_not_count():
    labels = torch.randint(0, 18, (1, 8, 8, 4))
    labels[0, :2] = 255
    logits = 20 * torch.nn.functional.one_hot(labels.clamp(max=17), 18).movedim(-1, 1).float()
    loss = OccupancyLoss()
    out = loss(logits, labels)
    assert out["lovasz"].item() == pytest.approx(0, abs=1e-6) and out["ce"].item() < 1e-6
    noisy = logits.clone()
    noisy[0, :, :2] = torch.randn_like(noisy[0, :, :2]) * 50  # only where the label is 255
    assert loss(noisy, labels)["loss"].item() == pytest.approx(out["loss"].item(), abs=1e-6)
    everything_ignored = torch.full_like(labels, 255)
    zero = loss(torch.randn(1, 18, 8, 8, 4, requires_grad=True), everything_ignored)["loss"]
    assert zero.item() == 0.0
    zero.backward()  # still differentiable


def test_gradients_flow_and_bad_labels_are_errors():
    logits = torch.randn(1, 18, 4, 4, 2, requires_grad=True)
    OccupancyLoss()(logits, torch.randint(0, 18, (1, 4, 4, 2)))["loss"].backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="outside 0-17"):
        OccupancyLoss()(torch.randn(1, 18, 2, 2, 2), torch.full((1, 2, 2, 2), 40))
    with pytest.raises(ValueError, match="do not match"):
        OccupancyLoss()(torch.randn(1, 18, 2, 2, 2), torch.zeros(1, 2, 2, 3, dtype=torch.long))


def test_class_weights():
    w = class_weights([1000, 10, 0, 100])
    assert w[1] > w[3] > w[0] and w[2] == 0 and w[[0, 1, 3]].mean().item() == pytest.approx(1.0)
    s = class_weights([1000, 10, 0, 100], "inverse_sqrt")
    assert s[1] / s[0] == pytest.approx(10.0, rel=1e-5)
    with pytest.raises(ValueError, match="all zero"):
        class_weights([0, 0])
    with pytest.raises(ValueError, match="mode"):
        class_weights([1, 2], "median")
