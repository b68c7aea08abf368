"""Analytic solids of the demo world: ray intersection (rendering, lidar) and voxel overlap (truth).

Three kinds, all upright (rotated about z only), in one local metric frame, z up:
  boxes      centre (x, y, z), half sizes (hx, hy, hz), yaw
  cones      vertical truncated cones: base centre (x, y, z0), height, radius r0 at z0 and r1 at the top
             (a cylinder when r0 == r1)
  ellipsoids centre (x, y, z), horizontal radius a, vertical radius c
plus the ground, the plane z = 0, whose class comes from a 2D region map (see layout.py).

Every part carries an Occ3D class, an instance id, a base colour and a texture id. Rendering and the
ground truth use the same formulas, so depth, classes and voxels agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

EPS = 1e-9
KINDS = ("boxes", "cones", "ellipsoids")


@dataclass
class Parts:
    """Parts of one kind; `geom` columns depend on the kind (see module docstring).

    boxes: [x, y, z, hx, hy, hz, yaw]; cones: [x, y, z0, height, r0, r1]; ellipsoids: [x, y, z, a, c].
    """

    kind: str
    geom: np.ndarray  # (P, G) float64
    cls: np.ndarray  # (P,) uint8 Occ3D class
    inst: np.ndarray  # (P,) int32 instance id (0 = none)
    color: np.ndarray  # (P, 3) float64 base colour 0-1
    tex: np.ndarray  # (P,) int32 texture id

    def __len__(self) -> int:
        return len(self.cls)

    def select(self, idx) -> "Parts":
        return Parts(self.kind, *(getattr(self, f.name)[idx] for f in fields(self)[1:]))

    @staticmethod
    def concat(kind: str, parts: list["Parts"]) -> "Parts":
        width = {"boxes": 7, "cones": 6, "ellipsoids": 5}[kind]
        parts = [p for p in parts if len(p)]
        if not parts:
            return Parts(
                kind,
                np.zeros((0, width)),
                np.zeros(0, np.uint8),
                np.zeros(0, np.int32),
                np.zeros((0, 3)),
                np.zeros(0, np.int32),
            )
        return Parts(kind, *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Parts)[1:]))

    def volumes(self) -> np.ndarray:
        g = self.geom
        if self.kind == "boxes":
            return 8 * g[:, 3] * g[:, 4] * g[:, 5]
        if self.kind == "cones":
            return np.pi * g[:, 3] / 3 * (g[:, 4] ** 2 + g[:, 4] * g[:, 5] + g[:, 5] ** 2)
        return 4 / 3 * np.pi * g[:, 3] ** 2 * g[:, 4]

    def bounding_spheres(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres (P, 3) and radii (P,) of spheres that contain each part."""
        g = self.geom
        if self.kind == "boxes":
            return g[:, :3], np.linalg.norm(g[:, 3:6], axis=1)
        if self.kind == "cones":
            c = np.stack([g[:, 0], g[:, 1], g[:, 2] + g[:, 3] / 2], 1)
            return c, np.hypot(np.maximum(g[:, 4], g[:, 5]), g[:, 3] / 2)
        return g[:, :3], np.maximum(g[:, 3], g[:, 4])

    def moved(self, x: float, y: float, yaw: float) -> "Parts":
        """These parts (given in an object frame) placed at (x, y) with heading `yaw`."""
        c, s = np.cos(yaw), np.sin(yaw)
        g = self.geom.copy()
        px, py = g[:, 0].copy(), g[:, 1].copy()
        g[:, 0] = x + c * px - s * py
        g[:, 1] = y + s * px + c * py
        if self.kind == "boxes":
            g[:, 6] = g[:, 6] + yaw
        return Parts(self.kind, g, self.cls, self.inst, self.color, self.tex)


@dataclass
class Solids:
    """All parts of the world at one instant."""

    boxes: Parts
    cones: Parts
    ellipsoids: Parts

    def kinds(self):
        return ((k, getattr(self, k)) for k in KINDS)

    def moved_to_frame(self, x: float, y: float, yaw: float) -> "Solids":
        """Express the solids in a frame whose origin is (x, y, 0) with heading `yaw` (upright frames only)."""
        c, s = np.cos(yaw), np.sin(yaw)
        out = {}
        for kind, p in self.kinds():
            g = p.geom.copy()
            dx, dy = g[:, 0] - x, g[:, 1] - y
            g[:, 0] = c * dx + s * dy
            g[:, 1] = -s * dx + c * dy
            if kind == "boxes":
                g[:, 6] = g[:, 6] - yaw
            out[kind] = Parts(kind, g, p.cls, p.inst, p.color, p.tex)
        return Solids(**out)


# ----------------------------------------------------------------------------------------------
# Ray intersection: origins (N, 3), unit directions (N, 3) -> t (N, P), inf where missed.


def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < 1e-15, np.where(d < 0, -1e-15, 1e-15), d)


def ray_boxes(o: np.ndarray, d: np.ndarray, g: np.ndarray) -> np.ndarray:
    c, s = np.cos(g[:, 6]), np.sin(g[:, 6])
    ox, oy, oz = o[:, 0:1] - g[:, 0], o[:, 1:2] - g[:, 1], o[:, 2:3] - g[:, 2]
    lo = (c * ox + s * oy, -s * ox + c * oy, oz)
    ld = (c * d[:, 0:1] + s * d[:, 1:2], -s * d[:, 0:1] + c * d[:, 1:2], np.broadcast_to(d[:, 2:3], ox.shape))
    tnear = np.full(ox.shape, -np.inf)
    tfar = np.full(ox.shape, np.inf)
    for k in range(3):
        inv = 1.0 / _safe(ld[k])
        t1 = (-g[:, 3 + k] - lo[k]) * inv
        t2 = (g[:, 3 + k] - lo[k]) * inv
        tnear = np.maximum(tnear, np.minimum(t1, t2))
        tfar = np.minimum(tfar, np.maximum(t1, t2))
    return np.where((tnear <= tfar) & (tnear > EPS), tnear, np.inf)


def ray_cones(o: np.ndarray, d: np.ndarray, g: np.ndarray) -> np.ndarray:
    z0, h, r0, r1 = g[:, 2], g[:, 3], g[:, 4], g[:, 5]
    k = (r1 - r0) / h
    px, py = o[:, 0:1] - g[:, 0], o[:, 1:2] - g[:, 1]
    dx, dy, dz = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    w0 = r0 + k * (o[:, 2:3] - z0)
    a = dx * dx + dy * dy - k * k * dz * dz
    b = 2 * (px * dx + py * dy - k * w0 * dz)
    cc = px * px + py * py - w0 * w0
    disc = b * b - 4 * a * cc
    sq = np.sqrt(np.maximum(disc, 0))
    small = np.abs(a) < 1e-12
    a_safe = np.where(small, 1.0, a)
    roots = [
        np.where(small, -cc / _safe(b), (-b - sq) / (2 * a_safe)),
        np.where(small, np.inf, (-b + sq) / (2 * a_safe)),
    ]
    best = np.full(px.shape, np.inf)
    for t in roots:
        z = o[:, 2:3] + t * dz
        ok = (disc >= 0) & (t > EPS) & (z >= z0) & (z <= z0 + h) & (w0 + k * t * dz >= 0)
        best = np.where(ok & (t < best), t, best)
    for zc, rc in ((z0 + h, r1), (z0, r0)):  # caps
        t = (zc - o[:, 2:3]) / _safe(dz)
        qx, qy = px + t * dx, py + t * dy
        ok = (t > EPS) & (qx * qx + qy * qy <= rc * rc)
        best = np.where(ok & (t < best), t, best)
    return best


def ray_ellipsoids(o: np.ndarray, d: np.ndarray, g: np.ndarray) -> np.ndarray:
    s = g[:, 3] / g[:, 4]
    px, py, pz = o[:, 0:1] - g[:, 0], o[:, 1:2] - g[:, 1], (o[:, 2:3] - g[:, 2]) * s
    dx, dy, dz = d[:, 0:1], d[:, 1:2], d[:, 2:3] * s
    A = dx * dx + dy * dy + dz * dz
    B = 2 * (px * dx + py * dy + pz * dz)
    C = px * px + py * py + pz * pz - g[:, 3] ** 2
    disc = B * B - 4 * A * C
    t = (-B - np.sqrt(np.maximum(disc, 0))) / (2 * A)
    return np.where((disc >= 0) & (t > EPS), t, np.inf)


RAY_FUNCS = {"boxes": ray_boxes, "cones": ray_cones, "ellipsoids": ray_ellipsoids}


def surface_normals(kind: str, g: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Outward unit normals at surface points p (N, 3) of parts with geometry rows g (N, G)."""
    if kind == "boxes":
        c, s = np.cos(g[:, 6]), np.sin(g[:, 6])
        dx, dy = p[:, 0] - g[:, 0], p[:, 1] - g[:, 1]
        local = np.stack([c * dx + s * dy, -s * dx + c * dy, p[:, 2] - g[:, 2]], 1) / g[:, 3:6]
        axis = np.argmax(np.abs(local), 1)
        n_local = np.zeros_like(local)
        n_local[np.arange(len(p)), axis] = np.sign(local[np.arange(len(p)), axis])
        n = np.stack([c * n_local[:, 0] - s * n_local[:, 1], s * n_local[:, 0] + c * n_local[:, 1], n_local[:, 2]], 1)
    elif kind == "cones":
        k = (g[:, 5] - g[:, 4]) / g[:, 3]
        dx, dy = p[:, 0] - g[:, 0], p[:, 1] - g[:, 1]
        w = g[:, 4] + k * (p[:, 2] - g[:, 2])
        n = np.stack([dx, dy, -k * w], 1)
        top = np.abs(p[:, 2] - (g[:, 2] + g[:, 3])) < 1e-6
        bottom = np.abs(p[:, 2] - g[:, 2]) < 1e-6
        n[top] = (0, 0, 1)
        n[bottom] = (0, 0, -1)
    else:
        n = np.stack(
            [
                (p[:, 0] - g[:, 0]) / g[:, 3] ** 2,
                (p[:, 1] - g[:, 1]) / g[:, 3] ** 2,
                (p[:, 2] - g[:, 2]) / g[:, 4] ** 2,
            ],
            1,
        )
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


# ----------------------------------------------------------------------------------------------
# Voxel overlap: does a part share any volume with the axis-aligned cube(s) of half size `half`
# centred at v (V, 3)? Exact for these shapes; touching along a face, edge or point does not count.


def overlap_box(g: np.ndarray, v: np.ndarray, half: float) -> np.ndarray:
    x, y, z, hx, hy, hz, yaw = g
    c, s = abs(np.cos(yaw)), abs(np.sin(yaw))
    dx, dy, dz = x - v[:, 0], y - v[:, 1], z - v[:, 2]
    ok = np.abs(dz) < hz + half
    ok &= np.abs(dx) < half + c * hx + s * hy
    ok &= np.abs(dy) < half + s * hx + c * hy
    cy, sy = np.cos(yaw), np.sin(yaw)
    r = half * (c + s)  # the cube's radius projected on the box's axes
    ok &= np.abs(cy * dx + sy * dy) < hx + r
    ok &= np.abs(-sy * dx + cy * dy) < hy + r
    return ok


def overlap_cone(g: np.ndarray, v: np.ndarray, half: float) -> np.ndarray:
    x, y, z0, h, r0, r1 = g
    zl = np.maximum(v[:, 2] - half, z0)
    zh = np.minimum(v[:, 2] + half, z0 + h)
    # Discs are concentric, so the widest disc inside the voxel's z-range decides.
    r = np.maximum(r0 + (r1 - r0) * (zl - z0) / h, r0 + (r1 - r0) * (zh - z0) / h)
    qx = np.clip(x, v[:, 0] - half, v[:, 0] + half) - x
    qy = np.clip(y, v[:, 1] - half, v[:, 1] + half) - y
    return (zl < zh) & (qx * qx + qy * qy < r * r)


def overlap_ellipsoid(g: np.ndarray, v: np.ndarray, half: float) -> np.ndarray:
    x, y, z, a, c = g
    s = a / c  # scale z so that the ellipsoid becomes a sphere of radius a
    qx = np.clip(x, v[:, 0] - half, v[:, 0] + half) - x
    qy = np.clip(y, v[:, 1] - half, v[:, 1] + half) - y
    qz = (np.clip(z, v[:, 2] - half, v[:, 2] + half) - z) * s
    return qx * qx + qy * qy + qz * qz < a * a


OVERLAP_FUNCS = {"boxes": overlap_box, "cones": overlap_cone, "ellipsoids": overlap_ellipsoid}


def part_aabb(kind: str, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds (lower, upper) of one part with geometry row g."""
    if kind == "boxes":
        c, s = abs(np.cos(g[6])), abs(np.sin(g[6]))
        ext = np.array([c * g[3] + s * g[4], s * g[3] + c * g[4], g[5]])
        return g[:3] - ext, g[:3] + ext
    if kind == "cones":
        r = max(g[4], g[5])
        return np.array([g[0] - r, g[1] - r, g[2]]), np.array([g[0] + r, g[1] + r, g[2] + g[3]])
    return g[:3] - np.array([g[3], g[3], g[4]]), g[:3] + np.array([g[3], g[3], g[4]])
