"""Lift depth and class maps into labelled 3D points (docs/method.md, "Lift"): one image
(`lift_image`), or every camera image of a keyframe into a scene's anchor frame (`lift_keyframe`).

    X_frame = T_frame_cam @ [d * K^-1 [u, v, 1]^T; 1]

T_frame_cam is composed in float64 by the caller (global poses are kilometres from the origin) and
ends in a local frame, so the per-point arithmetic can run in float32 on any device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ops.data.keyframes import KeyframeRecord
from ops.fusion.config import FusionConfig
from ops.fusion.ground import GroundRule, GroundScale, ground_scale
from ops.fusion.projection import CameraView
from ops.geometry import check_intrinsics, check_rigid, in_box, invert_transform
from ops.occ3d import FREE, UNOBSERVED


@dataclass
class LiftedPoints:
    points: torch.Tensor  # (N, 3) float32, metres, in the target frame
    classes: torch.Tensor  # (N,) uint8 Occ3D ids
    is_ray: torch.Tensor  # (N,) bool: True for a pixel's own point (a camera ray ends there),
    #                        False for a point filled in between two neighbouring pixels
    origin: torch.Tensor  # (3,) float32 camera centre in the target frame
    dropped: int  # pixels without a usable depth or class
    confidence: torch.Tensor | None = None  # (N,) float32 in [0, 1] when a confidence map was given
    usable_depth: torch.Tensor | None = None  # (Hs, Ws) float32 depth at the stride, 0 where a pixel was dropped
    pixel_confidence: torch.Tensor | None = None  # (Hs, Ws) float32 confidence at the stride, when given


def lift_image(
    depth,
    semantics,
    K,
    T_frame_cam,
    *,
    stride: int = 1,
    min_depth: float = 0.1,
    max_depth: float = 80.0,
    fill_step: float | None = None,
    fill_max_jump: float = 0.08,
    device: str | torch.device = "cpu",
    name: str = "",
    confidence=None,
    edge_jump: float | None = None,
) -> LiftedPoints:
    """Labelled points of one image.

    depth: (H, W) metres along the optical axis; 0, NaN, inf or outside [min_depth, max_depth] is dropped.
    semantics: (H, W) uint8 Occ3D ids; free/sky (17) and unknown (255) are dropped.
    K: (3, 3) intrinsics at this resolution; T_frame_cam: (4, 4) camera -> target frame.
    stride: use every stride-th pixel in both directions.
    fill_step: if set (metres), neighbouring pixels (right and below, at the stride) of one class whose
      depths differ by at most fill_max_jump (relative) are joined by extra points every fill_step
      metres, so that a surface seen at a grazing angle leaves no voxel gaps (beyond the paper). A pair
      with a larger depth step is joined too when its 3D step continues the neighbouring pair's
      direction (cosine >= 0.98): one surface, not an edge between two. At most 63 points fill a pair.
    confidence: optional (H, W) per-pixel confidence in [0, 1] (a float map, or uint8 0-255); each point
      carries its pixel's, a filled point the lower of its pair's.
    edge_jump: if set, pixels where the depth breaks off a plane (`depth_edges` at the stride) are dropped
      like unusable ones: no point, no ray, no depth for projection.
    """
    where = f"{name}: " if name else ""
    depth_np = np.asarray(depth)
    sem_np = np.asarray(semantics)
    if depth_np.ndim != 2 or depth_np.shape != sem_np.shape:
        raise ValueError(f"{where}depth {depth_np.shape} and semantics {sem_np.shape} must be the same (H, W)")
    if sem_np.dtype != np.uint8:
        raise ValueError(f"{where}semantics must be uint8 Occ3D ids, got {sem_np.dtype}")
    if stride < 1:
        raise ValueError(f"{where}stride must be >= 1, got {stride}")
    conf = None if confidence is None else _confidence_map(confidence, depth_np.shape, where)
    K = check_intrinsics(K, name)
    T = check_rigid(T_frame_cam, "T_frame_cam", name)
    H, W = depth_np.shape
    d = torch.as_tensor(np.ascontiguousarray(depth_np[::stride, ::stride]), dtype=torch.float32, device=device)
    c = torch.as_tensor(np.ascontiguousarray(sem_np[::stride, ::stride]), device=device)
    vs = torch.arange(0, H, stride, device=device, dtype=torch.float64)
    us = torch.arange(0, W, stride, device=device, dtype=torch.float64)
    Kinv = torch.as_tensor(np.linalg.inv(K), device=device)
    # Ray directions (z = 1) per pixel: x = (u - cx) / fx - skew terms, in float64 then float32.
    rx = (Kinv[0, 0] * us[None, :] + Kinv[0, 1] * vs[:, None] + Kinv[0, 2]).float()
    ry = (Kinv[1, 1] * vs[:, None] + Kinv[1, 2]).float().expand_as(rx)
    valid = torch.isfinite(d) & (d >= min_depth) & (d <= max_depth) & (c != FREE) & (c != UNOBSERVED)
    if edge_jump is not None:
        valid = valid & ~depth_edges(torch.where(valid, d, torch.zeros_like(d)), edge_jump, c)
    dz = torch.where(valid, d, torch.zeros_like(d))
    cam = torch.stack([rx * dz, ry * dz, dz], -1)  # (Hs, Ws, 3)
    R = torch.as_tensor(T[:3, :3], dtype=torch.float32, device=device)
    t = torch.as_tensor(T[:3, 3], dtype=torch.float32, device=device)
    pts = cam @ R.T + t
    points, classes = pts[valid], c[valid]
    cs = None if conf is None else torch.as_tensor(np.ascontiguousarray(conf[::stride, ::stride]), device=device)
    point_conf = None if cs is None else cs[valid]
    is_ray = torch.ones(len(points), dtype=torch.bool, device=device)
    if fill_step:
        extra_p, extra_c, extra_w = _fill_points(pts, c, dz, valid, fill_step, fill_max_jump, cs)
        if extra_p:
            points = torch.cat([points] + extra_p)
            classes = torch.cat([classes] + extra_c)
            is_ray = torch.cat([is_ray, torch.zeros(len(points) - len(is_ray), dtype=torch.bool, device=device)])
            if point_conf is not None:
                point_conf = torch.cat([point_conf] + extra_w)
    return LiftedPoints(points, classes, is_ray, t.clone(), int((~valid).sum()), point_conf, dz, cs)


def depth_edges(depth: torch.Tensor, jump: float, classes: torch.Tensor | None = None) -> torch.Tensor:
    """(H, W) bool: the pixels whose depth lies on no surface of their own: flying pixels, the
    background's pixels that took a foreground's depth (with `classes`), and pixels that disagree with
    both neighbours.

    On any plane the inverse depth is affine in the pixel coordinates, so its second difference along a
    row or a column is zero. Where that second difference, centred on a usable pixel (depth > 0) between
    two usable ones, exceeds `jump` times its own inverse depth, the pixel *breaks* off its neighbours'
    surfaces along that axis. A pixel that breaks is kept only when
      - it continues the plane of a neighbour of its own class (the second difference centred on that
        neighbour is within the jump): an object's outermost pixel, the background's first; or
      - it is no farther than its nearer neighbour (by the factor 1 + jump) and that neighbour has its
        class, or it is nearer than both by that factor: an object one or two pixels wide (a pole, a
        distant cone).
    Dropped are then a pixel in mid-air between an object and the background (a flying pixel), one with
    the background's class at the object's depth (bleeding), and one off the surface both its neighbours
    lie on. Without `classes` every pixel counts as of its neighbours' class."""
    usable = depth > 0
    inv = torch.where(usable, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    edge = torch.zeros_like(usable)
    for axis in (0, 1):
        n = depth.shape[axis]
        if n < 3:
            continue
        prev, mid, nxt = (inv.narrow(axis, k, n - 2) for k in range(3))
        ok = usable.narrow(axis, 0, n - 2) & usable.narrow(axis, 1, n - 2) & usable.narrow(axis, 2, n - 2)
        big = (prev - 2 * mid + nxt).abs() > jump * mid
        breaks, flat = torch.zeros_like(usable), torch.zeros_like(usable)
        breaks.narrow(axis, 1, n - 2).copy_(ok & big)
        flat.narrow(axis, 1, n - 2).copy_(ok & ~big)  # three usable pixels on one plane, centred here
        keep = torch.zeros_like(usable)
        for mine, theirs in ((0, 1), (1, 0)):  # the neighbour after each pixel, then the one before
            cont = flat.narrow(axis, theirs, n - 1)
            if classes is not None:
                cont = cont & (classes.narrow(axis, theirs, n - 1) == classes.narrow(axis, mine, n - 1))
            keep.narrow(axis, mine, n - 1).logical_or_(cont)
        # Nearness in inverse depth: the nearer neighbour has the larger inverse depth.
        prev_nearer = prev >= nxt
        nearer = torch.where(prev_nearer, prev, nxt)
        front = mid * (1 + jump) >= nearer  # no farther than the nearer neighbour
        if classes is not None:
            c_prev, c_mid, c_next = (classes.narrow(axis, k, n - 2) for k in range(3))
            front = front & (c_mid == torch.where(prev_nearer, c_prev, c_next))
        thin = ok & (front | (mid > nearer * (1 + jump)))  # ... of its class, or nearer than both
        keep.narrow(axis, 1, n - 2).logical_or_(thin)
        edge |= breaks & ~keep
    return edge


def _confidence_map(confidence, shape: tuple, where: str) -> np.ndarray:
    """A per-pixel confidence map as float32 in [0, 1] (uint8 maps are read as 0-255)."""
    conf = np.asarray(confidence)
    if conf.shape != shape:
        raise ValueError(f"{where}confidence {conf.shape} must be the size of the depth map {shape}")
    if conf.dtype == np.uint8:
        return conf.astype(np.float32) / 255
    conf = conf.astype(np.float32)
    if not np.all(np.isfinite(conf)) or conf.min(initial=0) < 0 or conf.max(initial=0) > 1:
        raise ValueError(
            f"{where}confidence must lie in [0, 1] (or be uint8 0-255), got values in "
            f"[{np.nanmin(conf):.3g}, {np.nanmax(conf):.3g}]"
        )
    return conf


def _fill_points(
    pts: torch.Tensor,
    c: torch.Tensor,
    dz: torch.Tensor,
    valid: torch.Tensor,
    fill_step: float,
    fill_max_jump: float,
    conf: torch.Tensor | None = None,
):
    """Extra points, their classes and (with a confidence map `conf`) confidences between neighbouring
    pixels of one surface, right then below (see lift_image's `fill_step`). pts (Hs, Ws, 3), c, dz (depth,
    0 where invalid) and valid (Hs, Ws)."""
    device = pts.device
    extra_p, extra_c, extra_w = [], [], []
    for axis in (1, 0):  # neighbours to the right, then below
        n_ax = pts.shape[axis]
        if n_ax < 2:
            continue
        a = [slice(None), slice(None)]
        b = [slice(None), slice(None)]
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        da, db = dz[a], dz[b]
        pair_ok = valid[a] & valid[b] & (c[a] == c[b])
        gap = pts[b] - pts[a]  # (.., 3) step between neighbours
        small = (da - db).abs() <= fill_max_jump * torch.minimum(da, db)
        # A larger step is still one surface if it continues in 3D along its neighbouring step
        # (a road seen at a grazing angle); a depth edge between two surfaces does not.
        # (The same slices a, b pair each step with the next one along the axis.)
        unit = gap / gap.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        straight = pair_ok[a] & pair_ok[b] & ((unit[a] * unit[b]).sum(-1) >= 0.98)
        cont = torch.zeros_like(pair_ok)
        cont[a] |= straight
        cont[b] |= straight
        ok = pair_ok & (small | cont)
        pa, pb, cls = pts[a][ok], pts[b][ok], c[a][ok]
        n = torch.ceil((pb - pa).norm(dim=1) / fill_step).long().clamp(1, 64) - 1
        if int(n.sum()) == 0:
            continue
        pair = torch.repeat_interleave(torch.arange(len(n), device=device), n)
        k = torch.arange(len(pair), device=device) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n) + 1
        f = (k.float() / (n[pair] + 1).float())[:, None]
        extra_p.append(pa[pair] + (pb[pair] - pa[pair]) * f)
        extra_c.append(cls[pair])
        if conf is not None:
            extra_w.append(torch.minimum(conf[a][ok], conf[b][ok])[pair])
    return extra_p, extra_c, extra_w


def move_points(T_to_from: np.ndarray, p: torch.Tensor) -> torch.Tensor:
    """Points (N, 3) float32 moved by a 4x4 transform, element by element in a fixed order (the
    Triton kernels do the same arithmetic, so both agree on points lying on voxel faces)."""
    T = np.asarray(T_to_from, dtype=np.float32).tolist()
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    return torch.stack([T[i][0] * x + T[i][1] * y + T[i][2] * z + T[i][3] for i in range(3)], 1)


def remove_outliers(points: torch.Tensor, nb_neighbors: int = 20, std_ratio: float = 2.0) -> torch.Tensor:
    """Bool keep-mask (N,) from Open3D's statistical outlier removal (docs/method.md, "Outliers")."""
    import open3d as o3d

    keep = torch.zeros(len(points), dtype=torch.bool)
    if len(points) <= nb_neighbors:
        keep[:] = True
        return keep.to(points.device)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.detach().cpu().double().numpy()))
    _, idx = pcd.remove_statistical_outlier(nb_neighbors=nb_neighbors, std_ratio=std_ratio)
    keep[torch.as_tensor(np.asarray(idx, dtype=np.int64))] = True
    return keep.to(points.device)


@dataclass
class LiftedFrame:
    """One keyframe's points in the scene's anchor frame (about 14 bytes a point)."""

    token: str
    timestamp: int
    T_anchor_ego: np.ndarray  # (4, 4) float64: the label frame of this keyframe
    points: torch.Tensor  # (N, 3) float32
    classes: torch.Tensor  # (N,) uint8
    is_ray: torch.Tensor  # (N,) bool: a pixel's own point, where its camera ray ends (used
    #                               for free space); False for surface-fill points and skipped rays
    camera: torch.Tensor  # (N,) uint8: index into `origins` of the point's camera
    origins: torch.Tensor  # (C, 3) float32 camera centres
    dropped_pixels: int = 0
    outliers: int = 0
    confidence: torch.Tensor | None = None  # (N,) float32 per point, when the perception gave confidence maps
    views: list[CameraView] = field(default_factory=list)  # per image, for free space by projection
    ground: list[GroundScale] = field(default_factory=list)  # per image, when the depth was scaled from the ground
    ego_points: int = 0  # points dropped inside the ego car's box
    axes: torch.Tensor | None = None  # (C, 3) float32 optical axis (unit) of each camera
    n_static: int | None = None  # the first n_static points are of static classes, the rest movable
    movable_classes: tuple = ()  # ... movable as these class ids say

    def static(self, movable_classes: tuple) -> slice:
        """The points of static classes: a prefix (lift_keyframe puts the movable ones last)."""
        if tuple(movable_classes) != self.movable_classes:
            raise ValueError(
                f"keyframe {self.token} was lifted with movable classes {self.movable_classes}, "
                f"not {tuple(movable_classes)}"
            )
        return slice(0, len(self.points) if self.n_static is None else self.n_static)

    def rays(self, keep: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """(origins, ends) (R, 3) of the free-space rays of the points `keep` selects (a slice)."""
        sel = self.is_ray[keep]
        return self.origins[self.camera[keep][sel].long()], self.points[keep][sel]

    def ray_depths(self, keep: slice = slice(None)) -> torch.Tensor:
        """(R,) z-depth of each ray's end in its camera (the depth the perception gave), in rays()' order."""
        sel = self.is_ray[keep]
        cam = self.camera[keep][sel].long()
        return ((self.points[keep][sel] - self.origins[cam]) * self.axes[cam]).sum(1)


def _drop_ego_body(lp: LiftedPoints, T_anchor_ego: np.ndarray, box) -> int:
    """Drop (in place) the points of one image that fall inside the ego car's box in that image's own ego
    frame; the number dropped."""
    body = in_box(move_points(invert_transform(T_anchor_ego), lp.points), box)
    n = int(body.sum())
    if n:
        keep = ~body
        lp.points, lp.classes, lp.is_ray = lp.points[keep], lp.classes[keep], lp.is_ray[keep]
        if lp.confidence is not None:
            lp.confidence = lp.confidence[keep]
    return n


# Per camera: (depth, semantics), (depth, semantics, weight or None), or (depth, semantics, the segmenter's
# confidence or None, the depth estimator's confidence or None): see pixel_weight.
PerceptionFn = Callable[[KeyframeRecord], Sequence[tuple]]


def pixel_weight(maps: tuple, cfg: FusionConfig):
    """The per-pixel weight of one camera's maps (None: every pixel weighs 1). A 3-tuple carries its weight;
    a 4-tuple carries the segmenter's and the depth estimator's confidence maps (uint8 0-255 or floats
    in [0, 1], either None), of which cfg.confidence picks one, or both as their product (the chance
    that the class and the depth are both right, taking their errors as independent)."""
    if len(maps) == 3:
        return maps[2]
    if len(maps) != 4 or cfg.confidence == "none":
        return None
    picked = [
        c
        for c, use in (
            (maps[2], cfg.confidence in ("segmenter", "both")),
            (maps[3], cfg.confidence in ("depth", "both")),
        )
        if use and c is not None
    ]
    if len(picked) < 2:
        return picked[0] if picked else None  # as stored: lift_image reads uint8 as 0-255
    a, b = (np.asarray(c, np.float32) / (255 if np.asarray(c).dtype == np.uint8 else 1) for c in picked)
    return a * b


def lift_keyframe(
    kf: KeyframeRecord, maps: Sequence[tuple], T_anchor_global: np.ndarray, cfg: FusionConfig
) -> LiftedFrame:
    """Lift the maps of each of kf.images into the anchor frame: per camera (depth, semantics[, weight]) or
    (depth, semantics, segmenter confidence, depth confidence) (see pixel_weight)."""
    if len(maps) != len(kf.images):
        raise ValueError(f"keyframe {kf.token}: {len(maps)} depth/class maps for {len(kf.images)} images")
    pts, cls, rays, cams, origins, axes, confs, views, grounds = [], [], [], [], [], [], [], [], []
    dropped = ego_points = 0
    rule = GroundRule(tuple(cfg.ground_classes)) if cfg.ground_scale else None
    for i, (img, m) in enumerate(zip(kf.images, maps)):
        name = f"{kf.scene}/{kf.token}/{img.channel} ({img.filename})"
        if len(m) not in (2, 3, 4):
            raise ValueError(
                f"{name}: expected (depth, semantics), (depth, semantics, weight) or (depth, semantics, "
                f"segmenter confidence, depth confidence), got {len(m)} maps"
            )
        depth, sem, conf = m[0], m[1], pixel_weight(m, cfg)
        if np.shape(depth) != (img.height, img.width):
            raise ValueError(f"{name}: depth is {np.shape(depth)}, the image is {(img.height, img.width)}")
        check_rigid(img.T_global_ego, "ego_pose", name)
        check_rigid(img.T_ego_cam, "calibrated_sensor", name)
        T = T_anchor_global @ img.T_global_ego @ img.T_ego_cam
        stride = cfg.stride_for(img.width)
        if rule is not None:
            gs = ground_scale(depth, sem, img.K, img.T_ego_cam, rule, stride=stride)
            grounds.append(gs)
            if gs.fit == "applied":
                depth = np.asarray(depth, dtype=np.float32) * np.float32(gs.scale)
        lp = lift_image(
            depth,
            sem,
            img.K,
            T,
            stride=stride,
            min_depth=cfg.min_depth,
            max_depth=cfg.max_depth,
            fill_step=cfg.fill_step,
            fill_max_jump=cfg.fill_max_jump,
            device=cfg.device,
            name=name,
            confidence=conf,
            edge_jump=cfg.edge_jump,
        )
        if cfg.ego_box is not None:
            ego_points += _drop_ego_body(lp, T_anchor_global @ img.T_global_ego, cfg.ego_box)
        is_ray = lp.is_ray.clone()
        if cfg.ray_stride > 1:  # keep every (ray_stride**2)-th pixel ray of this image
            idx = torch.nonzero(is_ray).squeeze(1)
            is_ray[idx] = False
            is_ray[idx[:: cfg.ray_stride**2]] = True
        pts.append(lp.points)
        cls.append(lp.classes)
        rays.append(is_ray)
        cams.append(torch.full((len(lp.points),), i, dtype=torch.uint8, device=lp.points.device))
        origins.append(lp.origin)
        axes.append(torch.as_tensor(T[:3, 2], dtype=torch.float32, device=lp.points.device))
        confs.append(lp.confidence)
        dropped += lp.dropped
        if cfg.free_space == "projection" or (cfg.surface != "none" and cfg.free_space != "empty_is_free"):
            views.append(CameraView(T, img.K, lp.usable_depth, stride, lp.pixel_confidence))
    points, classes, is_ray, camera = torch.cat(pts), torch.cat(cls), torch.cat(rays), torch.cat(cams)
    confidence = None
    if any(c is not None for c in confs):
        if any(c is None for c in confs):
            raise ValueError(f"keyframe {kf.scene}/{kf.token}: confidence maps for some cameras but not all")
        confidence = torch.cat(confs)
    outliers = 0
    if cfg.outlier_filter and len(points):
        keep = remove_outliers(points, cfg.outlier_neighbors, cfg.outlier_std_ratio)
        outliers = int((~keep).sum())
        points, classes, is_ray, camera = points[keep], classes[keep], is_ray[keep], camera[keep]
        confidence = None if confidence is None else confidence[keep]
    # Static points first, movable ones last: the other labels of the window take a prefix (no copy).
    movable = torch.isin(classes, torch.tensor(cfg.movable_classes, dtype=torch.uint8, device=classes.device))
    n_static = int((~movable).sum())
    if n_static < len(classes):
        order = torch.cat([torch.nonzero(~movable).squeeze(1), torch.nonzero(movable).squeeze(1)])
        points, classes, is_ray, camera = points[order], classes[order], is_ray[order], camera[order]
        confidence = None if confidence is None else confidence[order]
    return LiftedFrame(
        kf.token,
        kf.timestamp,
        T_anchor_global @ kf.T_global_ego,
        points,
        classes,
        is_ray,
        camera,
        torch.stack(origins) if origins else torch.zeros((0, 3)),
        dropped,
        outliers,
        confidence,
        views,
        grounds,
        ego_points,
        torch.stack(axes) if axes else torch.zeros((0, 3)),
        n_static,
        tuple(cfg.movable_classes),
    )
