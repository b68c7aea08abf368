"""Cross-view depth consistency (docs/method.md, "Consistency"): each image's depth scale and the window's
range curve, estimated from what the other images of the window see of the same surfaces, before the
window is fused again.

A depth network's errors hold across a whole image (a camera's systematic error, a scale that drifts
from one keyframe to the next) and across a whole window (far depth compressed or stretched by the same
network in every image), so the other views of the same surfaces, seen from other places and at other
ranges, are the way to see them. After a first pass over the window, the voxels that hold the window's
averaged surface (ops/fusion/surface.py: within the surface tolerance, voted, neither a flat class,
whose surface seen at a grazing angle lies metres from a voxel centre along a ray, nor a movable) are
the consensus. Each image's band gives, at each consensus voxel it reaches, a signed distance e (its
depth there minus the voxel centre's depth z, metres). One model explains them all, by weighted least
squares (the band weights 1 / sigma^2):

    e = a_voxel + z * (s_image + g(z)),    g(z) = sum_k b_k * max(0, log(z / t_k))

a_voxel: where the surface lies in the voxel (metres, the same for every view); s_image: the image's log
scale (with `consistency_gradient`, s_image + gx * u + gy * v: a scale varying linearly across the
image, u and v its normalised pixel coordinates, -1 .. 1, each coefficient with a prior of 0 and 0.05,
fitted only where the image's observations spread across it); g: the window's log factor with range, zero below the first knot and piecewise linear in log
range beyond it (knots at 10, 20 and 40 m). A global scale is seen through parallax only weakly, so
the ground anchors it: each image's scale has a prior of 0 with a standard deviation of 0.5 % where the
ground scale corrected it (ops/fusion/ground.py), 10 % where it did not; the curve's coefficients
have a prior of 0 with 0.1. Observations whose residual lies beyond 3 robust standard deviations are
dropped (occlusions, a wrong voxel), and the fit solved again. The voxel offsets are eliminated
exactly (each voxel's weighted mean taken out), which leaves one small dense system of the images'
scales and the curve's coefficients.

No correction is made, and the reason is recorded per image, when too few consensus voxels reach the
image (the views do not overlap), when its residuals scatter or most of them are outliers, or when its
scale is implausible; the
curve likewise when too few views reach beyond its knots or its factor at the maximum depth is
implausible, or when fewer than half the images the fit sees were corrected by the ground: without
that anchor an image's scale and the curve can trade for each other (an image that sees one surface at
one range). Estimates that would change the depth by less than ConsistencyRule.min_change (1 %) are
recorded and not applied ("negligible"): that small, they are the fit's own bias (surfaces sampled at
voxel centres), not the depth's error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ops.fusion.config import FusionConfig
from ops.fusion.ground import GroundScale
from ops.fusion.projection import Margin, camera_from_grid, project_image
from ops.fusion.surface import signed_distance, tolerance
from ops.geometry import invert_transform
from ops.occ3d import CLASS_ID, SURFACE_CLASSES, OccGrid

CONSISTENCY_FITS = ("applied", "few_points", "scattered", "implausible", "unanchored", "negligible")
# Classes whose surfaces are mostly seen at grazing angles (their voxel centres lie far from the surface
# along a ray, and farther the farther the view): left out of the consensus.
FLAT_CLASSES: tuple[int, ...] = tuple(
    c for c in SURFACE_CLASSES if c not in (CLASS_ID["manmade"], CLASS_ID["vegetation"])
)


@dataclass(frozen=True)
class RangeCurve:
    """The window's log depth factor with range: g(d) = sum_k coefficients[k] * max(0, log(d / knots[k]))."""

    knots: tuple[float, ...]
    coefficients: tuple[float, ...]
    points: int = 0  # observations beyond the first knot
    fit: str = "applied"  # one of CONSISTENCY_FITS, or "off" (no knots)

    def log_factor(self, depth: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(depth)
        if self.fit != "applied":
            return out
        ld = torch.log(depth.clamp_min(1e-3))
        for t, b in zip(self.knots, self.coefficients):
            if b != 0.0:
                out = out + b * (ld - math.log(t)).clamp_min(0)
        return out

    def at(self, depths) -> list[float]:
        """The factor at each of `depths` (metres), rounded: what the label's stats record."""
        return [round(float(v), 4) for v in torch.exp(self.log_factor(torch.tensor(depths, dtype=torch.float64)))]


RANGE_REPORT_M = (20.0, 40.0, 60.0)  # metres at which the label's stats give the range curve's factor
NO_CURVE = RangeCurve((), (), 0, "off")


@dataclass(frozen=True)
class ViewScale:
    scale: float  # the factor the image's depth is divided by (1.0 when not applied), besides the curve's
    estimate: float  # the estimate (NaN when there were too few points)
    points: int  # consensus voxels of this image the estimate used
    fit: str  # one of CONSISTENCY_FITS: "applied", or why not
    curve: RangeCurve = NO_CURVE  # the window's range curve, the same for each of its images
    gradient: tuple[float, float] = (0.0, 0.0)  # d log(factor) / d u and / d v (normalised pixel coordinates)

    @property
    def changes(self) -> bool:
        return self.fit == "applied" or self.curve.fit == "applied"

    def factor(self, depth: torch.Tensor, u: torch.Tensor | None = None, v: torch.Tensor | None = None) -> torch.Tensor:
        """The factor the depth `depth` (metres, > 0) is divided by, at normalised pixel coordinates u, v
        (-1 .. 1 across the image; needed only with a gradient)."""
        log_f = torch.zeros_like(depth) + (math.log(self.scale) if self.fit == "applied" else 0.0)
        if self.fit == "applied" and self.gradient != (0.0, 0.0):
            log_f = log_f + self.gradient[0] * u + self.gradient[1] * v
        if self.curve.fit == "applied":
            log_f = log_f + self.curve.log_factor(depth)
        return torch.exp(log_f)


@dataclass(frozen=True)
class ConsistencyRule:
    min_points: int = 50  # consensus voxels an image's scale needs
    max_spread: float = 0.15  # robust std of an image's relative residuals (e / z) above which they disagree
    min_inlier_share: float = 0.5  # ... or when fewer of its observations than this share are inliers
    max_log_scale: float = 0.3  # |log s| above this is implausible (x0.74 .. x1.35)
    knots: tuple[float, ...] = (10.0, 20.0, 40.0)  # metres: the range curve's knots (empty: no curve)
    min_curve_points: int = 200  # observations beyond a knot its coefficient needs
    prior_ground: float = 0.005  # prior std of the log scale of an image the ground scale corrected
    prior_scale: float = 0.10  # ... of any other image
    prior_curve: float = 0.10  # prior std of each curve coefficient
    min_anchored_share: float = 0.5  # the curve needs this share of the observed images corrected by the ground
    outlier_sd: float = 3.0  # residuals beyond this many robust standard deviations are dropped
    rounds: int = 4  # least-squares solves, outliers dropped and images judged after each
    gradient: bool = False  # also each image's scale gradient over the image (linear in u and v)
    prior_gradient: float = 0.05  # prior std of each gradient coefficient (log factor per half image)
    min_image_spread: float = 0.2  # robust std of an image's observations' u and v a gradient needs
    min_change: float = 0.01  # |log factor| below which a scale (or the curve, at its largest) is not applied


@dataclass
class _Observations:
    image: torch.Tensor  # (n,) int64 index of the image (keyframe-major)
    voxel: torch.Tensor  # (n,) int64 index of the consensus voxel
    z: torch.Tensor  # (n,) float64 the voxel centre's depth in the image's camera, metres
    e: torch.Tensor  # (n,) float64 the image's signed distance there, metres
    w: torch.Tensor  # (n,) float64 its band weight, 1 / metres^2
    u: torch.Tensor | None = None  # (n,) float64 the pixel column, -1 (left edge) .. 1 (right edge)
    v: torch.Tensor | None = None  # (n,) float64 the pixel row, -1 (top) .. 1 (bottom)

    def subset(self, m: torch.Tensor) -> "_Observations":
        return _Observations(
            *(None if x is None else x[m] for x in (self.image, self.voxel, self.z, self.e, self.w, self.u, self.v))
        )


def _observations(
    points: torch.Tensor, views: list, T_anchor_grid: np.ndarray, cfg: FusionConfig, grid: OccGrid
) -> _Observations:
    margin, band = Margin.of(cfg, grid), Margin.of(cfg, grid, cfg.surface_band_k)
    parts = []
    for i, view in enumerate(views):
        p = project_image(points, view, T_anchor_grid, margin, band, cfg.min_depth)
        idx = torch.nonzero(p.band_weight > 0).squeeze(1)
        T = torch.as_tensor(camera_from_grid(view, T_anchor_grid)[:3], device=points.device)
        cam = points[idx].double() @ T[:, :3].T + T[:, 3]
        z = cam[:, 2]
        w = p.band_weight[idx].double()
        u, v = image_coordinates(cam, view)
        parts.append((torch.full_like(idx, i), idx, z, p.band_sdf[idx].double() / w, w, u, v))
    if not parts:
        empty = torch.zeros(0, dtype=torch.int64, device=points.device)
        return _Observations(
            empty, empty, *(torch.zeros(0, dtype=torch.float64, device=points.device) for _ in range(5))
        )
    return _Observations(*(torch.cat(c) for c in zip(*parts)))


def image_coordinates(cam: torch.Tensor, view) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised pixel coordinates (-1 .. 1 across the image) of camera-frame points (n, 3) in `view`."""
    K = view.K
    H, W = view.depth.shape[0] * view.stride, view.depth.shape[1] * view.stride
    z = cam[:, 2].clamp_min(1e-6)
    u = (K[0, 0] * cam[:, 0] + K[0, 1] * cam[:, 1]) / z + K[0, 2]
    v = K[1, 1] * cam[:, 1] / z + K[1, 2]
    return 2 * u / W - 1, 2 * v / H - 1


def _robust_sd(x: torch.Tensor) -> float:
    if len(x) == 0:
        return float("nan")
    return float(1.4826 * (x - x.median()).abs().median())


def _solve(
    obs: _Observations,
    X: torch.Tensor,
    basis: torch.Tensor,
    W: torch.Tensor,
    prior: torch.Tensor,
    n_images: int,
    n_voxels: int,
    chunk: int = 8192,
) -> torch.Tensor:
    """The weighted least-squares parameters (n_images * J + K,) float64 (each image's J coefficients, then
    the curve's K) of e = a_voxel + X @ c_image + z * basis @ b, X (n, J) the image columns of each
    observation (z; z * u, z * v with the image gradient), the voxel offsets eliminated (each voxel's
    weighted mean taken out of the observations and of the design); `prior` the inverse prior variances
    (ridge)."""
    z, e, img, vox = obs.z, obs.e, obs.image, obs.voxel
    dev, K, J = z.device, basis.shape[1], X.shape[1]
    IJ = n_images * J
    P = IJ + K
    H = z[:, None] * basis
    N = torch.zeros((P, P), dtype=torch.float64, device=dev)
    rhs = torch.zeros(P, dtype=torch.float64, device=dev)
    blocks = torch.zeros((n_images, J, J), dtype=torch.float64, device=dev).index_add_(
        0, img, W[:, None, None] * X[:, :, None] * X[:, None, :]
    )
    N[:IJ, :IJ] = torch.block_diag(*blocks) if n_images else N[:0, :0]
    cross = (
        torch.zeros((n_images, J, K), dtype=torch.float64, device=dev)
        .index_add_(0, img, W[:, None, None] * X[:, :, None] * H[:, None, :])
        .reshape(IJ, K)
    )
    N[:IJ, IJ:], N[IJ:, :IJ] = cross, cross.T
    N[IJ:, IJ:] = H.T @ (W[:, None] * H)
    rhs[:IJ] = (
        torch.zeros((n_images, J), dtype=torch.float64, device=dev).index_add_(0, img, (W * e)[:, None] * X).reshape(IJ)
    )
    rhs[IJ:] = H.T @ (W * e)
    D = torch.zeros(n_voxels, dtype=torch.float64, device=dev).index_add_(0, vox, W)
    E = torch.zeros(n_voxels, dtype=torch.float64, device=dev).index_add_(0, vox, W * e)
    order = torch.argsort(vox)
    vs = vox[order]
    bounds = torch.searchsorted(vs, torch.arange(0, n_voxels + chunk, chunk, device=dev)).tolist()
    for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if hi <= lo:
            continue
        rows, v0 = order[lo:hi], c * chunk
        n_v = min(chunk, n_voxels - v0)
        G = torch.zeros((n_v, P), dtype=torch.float64, device=dev)
        local = vs[lo:hi] - v0
        for j in range(J):
            G.index_put_((local, img[rows] * J + j), W[rows] * X[rows, j], accumulate=True)
        G[:, IJ:].index_add_(0, local, W[rows, None] * H[rows])
        inv = 1.0 / D[v0 : v0 + n_v].clamp_min(1e-30)
        N -= G.T @ (G * inv[:, None])
        rhs -= G.T @ (E[v0 : v0 + n_v] * inv)
    return torch.linalg.solve(N + torch.diag(prior), rhs)


def fit_consistency(
    obs: _Observations, n_images: int, n_voxels: int, grounded: torch.Tensor, rule: ConsistencyRule = ConsistencyRule()
) -> tuple[list[ViewScale], RangeCurve]:
    """Each image's scale (and, with rule.gradient, its scale's gradient over the image) and the window's
    range curve from the observations (see the module doc); `grounded` (n_images,) bool: the images the
    ground scale corrected (their tighter prior)."""
    dev = obs.z.device
    obs = obs.subset(
        torch.bincount(obs.voxel, minlength=n_voxels)[obs.voxel] >= 2
    )  # a voxel one image sees says nothing
    z, e, w, img, vox = obs.z, obs.e, obs.w, obs.image, obs.voxel
    J = 3 if rule.gradient else 1
    X = torch.stack([z, z * obs.u, z * obs.v], 1) if J == 3 else z[:, None]
    knots = tuple(float(t) for t in rule.knots)
    K = len(knots)
    basis = (
        torch.stack([(torch.log(z / t)).clamp_min(0) for t in knots], 1)
        if K
        else torch.zeros((len(z), 0), dtype=torch.float64, device=dev)
    )
    curve_points = [int((z > t).sum()) for t in knots]
    use_k = torch.tensor([n >= rule.min_curve_points for n in curve_points], dtype=torch.bool, device=dev)
    n_obs = torch.bincount(img, minlength=n_images).tolist()
    fits = ["applied" if n >= rule.min_points else "few_points" for n in n_obs]
    prior_s = torch.where(grounded.to(dev), rule.prior_ground, rule.prior_scale).double() ** -2
    fixed = 1e12  # the inverse variance that holds a parameter at 0
    spans = torch.ones(n_images, dtype=torch.bool, device=dev)
    if J == 3:  # a gradient only where the image's observations spread across it
        for i in range(n_images):
            mine = img == i
            spans[i] = (
                bool(mine.any()) and min(_robust_sd(obs.u[mine]), _robust_sd(obs.v[mine])) >= rule.min_image_spread
            )
    keep = torch.ones_like(w)
    theta = torch.zeros(n_images * J + K, dtype=torch.float64, device=dev)
    seen = torch.bincount(img, minlength=n_images) > 0
    anchored = int((seen & grounded.to(dev)).sum()) >= rule.min_anchored_share * max(int(seen.sum()), 1)
    curve_fit = "off" if K == 0 else "few_points" if not bool(use_k.any()) else "applied" if anchored else "unanchored"
    if curve_fit != "applied":
        use_k = torch.zeros_like(use_k)
    for r in range(rule.rounds):
        free = torch.tensor([f == "applied" for f in fits], dtype=torch.bool, device=dev)
        p_img = torch.where(free, prior_s, torch.full_like(prior_s, fixed))[:, None]
        if J == 3:
            p_grad = torch.where(free & spans, rule.prior_gradient**-2, fixed).double()[:, None]
            p_img = torch.cat([p_img, p_grad, p_grad], 1)
        prior = torch.cat([p_img.reshape(-1), torch.where(use_k, rule.prior_curve**-2, fixed).double()])
        W = w * keep
        theta = _solve(obs, X, basis, W, prior, n_images, n_voxels)
        c, b = theta[: n_images * J].reshape(n_images, J), theta[n_images * J :]
        trial = RangeCurve(knots, tuple(float(v) for v in b.cpu()))
        if (
            curve_fit == "applied"
            and abs(float(trial.log_factor(torch.tensor([80.0], dtype=torch.float64))[0])) > rule.max_log_scale
        ):
            curve_fit, use_k = "implausible", torch.zeros_like(use_k)  # solved again without it
            continue
        pred = (X * c[img]).sum(1) + z * (basis @ b)
        wsum = torch.zeros(n_voxels, dtype=torch.float64, device=dev).index_add_(0, vox, W)
        a = torch.zeros(n_voxels, dtype=torch.float64, device=dev).index_add_(0, vox, W * (e - pred)) / wsum.clamp_min(
            1e-30
        )
        res = e - a[vox] - pred
        # Outliers: beyond outlier_sd robust standard deviations, never within one sigma of the depth error.
        norm = res * w.sqrt()
        keep = (norm.abs() <= max(rule.outlier_sd * _robust_sd(norm), 1.0)).double()
        if r == 0:
            continue
        changed = False
        for i, f in enumerate(fits):  # judge each image on its inliers
            if f != "applied":
                continue
            mine = (img == i) & (keep > 0)
            n_in = int(mine.sum())
            why = (
                "few_points"
                if n_in < rule.min_points
                else "scattered"
                if n_in < rule.min_inlier_share * n_obs[i] or _robust_sd(res[mine] / z[mine]) > rule.max_spread
                else "implausible"
                if abs(float(c[i, 0])) > rule.max_log_scale
                or (J == 3 and float(c[i, 1:].abs().max()) > rule.max_log_scale)
                else None
            )
            if why:
                fits[i], changed = why, True
        if r >= 2 and not changed:
            break
    c, coefficients = (
        theta[: n_images * J].reshape(n_images, J).cpu(),
        tuple(float(v) for v in theta[n_images * J :].cpu()),
    )
    # Changes smaller than the fit's own bias on exact depth (sampling the surface at voxel centres) are not made.
    if curve_fit == "applied":
        reach = torch.linspace(knots[0], max(knots[0], float(z.max())), 64, dtype=torch.float64, device=dev)
        if float(RangeCurve(knots, coefficients).log_factor(reach).abs().max()) < rule.min_change:
            curve_fit = "negligible"
    for i in range(n_images):
        if fits[i] == "applied" and float(c[i].abs().max()) < rule.min_change:
            fits[i] = "negligible"
    curve = RangeCurve(knots, coefficients, curve_points[0] if K else 0, curve_fit)
    counts = torch.zeros(n_images, dtype=torch.int64, device=dev).index_add_(0, img, (keep > 0).long()).tolist()
    scales = []
    for i in range(n_images):
        ok = fits[i] == "applied"
        gradient = (float(c[i, 1]), float(c[i, 2])) if J == 3 and ok and bool(spans[i]) else (0.0, 0.0)
        scales.append(
            ViewScale(
                math.exp(float(c[i, 0])) if ok else 1.0,
                math.exp(float(c[i, 0])) if counts[i] else float("nan"),
                int(counts[i]),
                fits[i],
                curve,
                gradient,
            )
        )
    return scales, curve


def rescaled(frame, scales: list[ViewScale]):
    """The keyframe (ops/fusion/lift.py's LiftedFrame) with each image's depth divided by its scale: its
    points moved along their camera rays, its depth maps divided (a shallow copy; `frame` is unchanged)."""
    if not any(s.changes for s in scales):
        return frame
    if len(scales) != len(frame.views):
        raise ValueError(f"keyframe {frame.token}: {len(scales)} scales for {len(frame.views)} images")
    cam = frame.camera.long()
    origin = frame.origins[cam]
    ray = frame.points - origin
    depth = (ray * frame.axes[cam]).sum(1)  # each point's z-depth in its camera
    factor = torch.ones_like(depth)
    views = []
    for k, (s, v) in enumerate(zip(scales, frame.views)):
        if not s.changes:
            views.append(v)
            continue
        mine = cam == k
        u_p = v_p = u_m = v_m = None
        if s.gradient != (0.0, 0.0):
            T = torch.as_tensor(invert_transform(v.T_anchor_cam)[:3], dtype=torch.float64, device=depth.device)
            u_p, v_p = image_coordinates(frame.points[mine].double() @ T[:, :3].T + T[:, 3], v)
            u_p, v_p = u_p.to(depth.dtype), v_p.to(depth.dtype)
            Hs, Ws = v.depth.shape
            jj = torch.arange(Ws, device=depth.device, dtype=torch.float64) * v.stride
            ii = torch.arange(Hs, device=depth.device, dtype=torch.float64) * v.stride
            u_m = (2 * jj / (Ws * v.stride) - 1)[None, :].expand(Hs, Ws).to(v.depth.dtype)
            v_m = (2 * ii / (Hs * v.stride) - 1)[:, None].expand(Hs, Ws).to(v.depth.dtype)
        factor[mine] = s.factor(depth[mine], u_p, v_p)
        usable = v.depth > 0
        views.append(
            replace(
                v, depth=torch.where(usable, v.depth / s.factor(torch.where(usable, v.depth, 1.0), u_m, v_m), v.depth)
            )
        )
    return replace(frame, points=origin + ray / factor[:, None], views=views)


def window_scales(
    frames,
    current,
    band_weight: torch.Tensor,
    band_sdf: torch.Tensor,
    voted: torch.Tensor,
    classes: torch.Tensor,
    cfg: FusionConfig,
    grid: OccGrid,
    centres: torch.Tensor,
    rule: ConsistencyRule = ConsistencyRule(),
) -> list[list[ViewScale]]:
    """Per keyframe of the window, per image: its scale and the window's range curve (see the module doc),
    from a first pass's summed band weights and weighted signed distances, its voted voxels and their
    classes (`centres` (V, 3) in the grid frame, which is `current`'s ego frame)."""
    sdf = signed_distance(band_weight, band_sdf)
    skip = torch.tensor(FLAT_CLASSES + tuple(cfg.movable_classes), dtype=classes.dtype, device=classes.device)
    consensus = voted & (band_weight > 0) & (sdf.abs() <= tolerance(band_weight, cfg)) & ~torch.isin(classes, skip)
    points = centres[consensus]
    views = [v for f in frames for v in f.views]
    grounded = torch.tensor([g.fit == "applied" for f in frames for g in _grounds(f)], dtype=torch.bool)
    obs = _observations(points, views, current.T_anchor_ego, cfg, grid)
    if not cfg.consistency_range:
        rule = replace(rule, knots=())
    if cfg.consistency_gradient:
        rule = replace(rule, gradient=True)
    flat, _ = fit_consistency(obs, len(views), len(points), grounded, rule)
    out, k = [], 0
    for f in frames:
        out.append(flat[k : k + len(f.views)])
        k += len(f.views)
    return out


def _grounds(frame) -> list[GroundScale]:
    """The keyframe's ground scales, one per image (none recorded: not corrected)."""
    g = list(frame.ground)
    return g if len(g) == len(frame.views) else [GroundScale(1.0, float("nan"), 0, "few_pixels")] * len(frame.views)
