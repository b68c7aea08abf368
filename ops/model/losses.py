"""3D losses against pseudo-labels: class-balanced cross-entropy + Lovasz-softmax, unobserved (255) ignored.

`OccupancyLoss` is self-contained (torch only) so another codebase can add it to its own losses:

    from ops.model.losses import OccupancyLoss, class_weights
    occ_loss = OccupancyLoss(class_weights(label_counts))        # counts per class over the training labels
    loss = loss + occ_loss(logits, labels)                        # logits (B, 18, X, Y, Z), labels (B, X, Y, Z)

Lovasz-softmax (Berman et al., CVPR 2018) is the convex Lovasz extension of the Jaccard loss: per class,
the errors |[y = c] - p_c| sorted in decreasing order, weighted by the gradient of the Jaccard index
along that order; averaged over the classes present in the batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IGNORE = 255


def class_weights(counts, mode: str = "log", floor: float = 1.02) -> torch.Tensor:
    """Per-class weights from label counts (rare classes weigh more).

    mode "log": 1 / ln(floor + frequency) (ENet's rule, bounded); "inverse_sqrt": 1 / sqrt(frequency);
    weights are normalised to mean 1 over the classes that occur; a class that never occurs gets 0.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or (c < 0).any():
        raise ValueError(f"class counts must be a 1-D array of non-negative numbers, got {c}")
    if c.sum() == 0:
        raise ValueError("class counts are all zero: no labelled voxel to weigh classes by")
    freq = c / c.sum()
    if mode == "log":
        w = 1.0 / np.log(floor + freq)
    elif mode == "inverse_sqrt":
        w = 1.0 / np.sqrt(np.maximum(freq, 1e-12))
    else:
        raise ValueError(f"class weight mode must be 'log' or 'inverse_sqrt', got {mode!r}")
    w[c == 0] = 0.0
    w = w / w[c > 0].mean()
    return torch.tensor(w, dtype=torch.float32)


def _jaccard_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of 1 - IoU for ground truth sorted by decreasing error."""
    total = fg_sorted.sum()
    inter = total - fg_sorted.cumsum(0)
    union = total + (1 - fg_sorted).cumsum(0)
    jac = 1.0 - inter / union
    if len(jac) > 1:
        jac[1:] = jac[1:] - jac[:-1]
    return jac


def lovasz_softmax(
    probs: torch.Tensor, labels: torch.Tensor, ignore: int = IGNORE, classes: str = "present"
) -> torch.Tensor:
    """probs (B, C, ...) softmax outputs, labels (B, ...) int -> scalar loss (0 when nothing is labelled).

    classes: "present" averages over the classes in the labels (the usual choice), "all" over every class.
    """
    c = probs.shape[1]
    p = probs.movedim(1, -1).reshape(-1, c)
    y = labels.reshape(-1)
    keep = y != ignore
    p, y = p[keep], y[keep].long()
    if len(y) == 0:
        return probs.sum() * 0.0
    losses = []
    for k in range(c):
        fg = (y == k).to(p.dtype)
        if classes == "present" and fg.sum() == 0:
            continue
        err = (fg - p[:, k]).abs()
        err_sorted, order = torch.sort(err, descending=True)
        losses.append(torch.dot(err_sorted, _jaccard_grad(fg[order])))
    return torch.stack(losses).mean() if losses else probs.sum() * 0.0


class OccupancyLoss(nn.Module):
    """weight_ce * class-balanced CE + weight_lovasz * Lovasz-softmax, over voxels whose label is not 255.

    forward(logits (B, C, X, Y, Z), labels (B, X, Y, Z) uint8/int) -> dict with "loss", "ce", "lovasz".
    """

    def __init__(
        self,
        weights: torch.Tensor | None = None,
        weight_ce: float = 1.0,
        weight_lovasz: float = 1.0,
        ignore: int = IGNORE,
    ):
        super().__init__()
        self.register_buffer("weights", None if weights is None else torch.as_tensor(weights, dtype=torch.float32))
        self.weight_ce, self.weight_lovasz, self.ignore = weight_ce, weight_lovasz, ignore

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        if logits.shape[0] != labels.shape[0] or logits.shape[2:] != labels.shape[1:]:
            raise ValueError(
                f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not match "
                "(expected (B, C, X, Y, Z) and (B, X, Y, Z))"
            )
        y = labels.long()
        bad = (y != self.ignore) & ((y < 0) | (y >= logits.shape[1]))
        if bad.any():
            raise ValueError(
                f"labels hold values outside 0-{logits.shape[1] - 1} and {self.ignore}: "
                f"{sorted(set(y[bad].unique().tolist()))[:5]}"
            )
        logits = logits.float()
        w = None if self.weights is None else self.weights.to(logits.device)
        if (y != self.ignore).any():
            ce = F.cross_entropy(logits, y, weight=w, ignore_index=self.ignore)
        else:
            ce = logits.sum() * 0.0
        lov = lovasz_softmax(logits.softmax(1), y, self.ignore) if self.weight_lovasz else logits.sum() * 0.0
        return {"loss": self.weight_ce * ce + self.weight_lovasz * lov, "ce": ce.detach(), "lovasz": lov.detach()}
