"""Procedural layout of one demo-world scene: a straight urban street seen from a driving ego car.

Local frame (metres, z up): the street runs along +x, its centre line at y = 0; the ego drives in
the lane at y = -3 towards +x. Across the street (|y|):
  0-8   driveable_surface (lanes at 3.0 and 6.2; a traffic island, other_flat, at |y| < 1.2 on a stretch)
  8-12  sidewalk (poles near the kerb, pedestrians walking)
  12+   terrain with trees, bushes and walls, then buildings from |y| = 16
A side street (driveable) leaves to +y at x = side_street_x. Parked vehicles and a construction zone
(cones, a construction vehicle) use the ego side's outer lane; oncoming cars and a motorcyclist the
+3 lane, cyclists the +6.2 lane; each lane's movers share one speed so they never collide.

Everything is drawn from a numpy Generator, so a seed fixes the scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ops.demo_world.solids import Parts, Solids
from ops.occ3d import CLASS_ID

C = CLASS_ID
ROAD_HALF, SIDEWALK_OUTER, BUILDING_INNER = 8.0, 12.0, 16.0
EGO_LANE_Y, PARK_LANE_Y, ONCOMING_Y, BIKE_Y = -3.0, -6.2, 3.0, 6.2
SIDE_STREET_HALF = 6.0

# Texture ids used by render.py.
TEX_PLAIN, TEX_FACADE, TEX_FOLIAGE, TEX_PAINT, TEX_GLASS, TEX_STRIPES, TEX_CLOTH, TEX_METAL = range(8)

# nuScenes category of each annotated class.
CATEGORY = {
    C["car"]: "vehicle.car",
    C["truck"]: "vehicle.truck",
    C["bus"]: "vehicle.bus.rigid",
    C["trailer"]: "vehicle.trailer",
    C["construction_vehicle"]: "vehicle.construction",
    C["motorcycle"]: "vehicle.motorcycle",
    C["bicycle"]: "vehicle.bicycle",
    C["pedestrian"]: "human.pedestrian.adult",
    C["traffic_cone"]: "movable_object.trafficcone",
    C["barrier"]: "movable_object.barrier",
}


@dataclass
class GroundLayout:
    island_x: tuple[float, float]
    side_street_x: float

    def classes(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Occ3D class of the ground at local (x, y) (arrays of one shape) -> uint8."""
        ay = np.abs(y)
        out = np.full(np.shape(x), C["terrain"], np.uint8)
        out[ay < SIDEWALK_OUTER] = C["sidewalk"]
        out[ay < ROAD_HALF] = C["driveable_surface"]
        island = (ay < 1.2) & (x > self.island_x[0]) & (x < self.island_x[1])
        out[island] = C["other_flat"]
        out[(np.abs(x - self.side_street_x) < SIDE_STREET_HALF) & (y > 0)] = C["driveable_surface"]
        return out


@dataclass
class Agent:
    """A moving object: parts in its own frame (x forward), straight motion along the street."""

    parts: Solids
    inst: int
    cls: int
    size_wlh: tuple[float, float, float]  # nuScenes box size (width, length, height)
    box_z: float  # box centre height
    x0: float
    y: float
    speed: float  # signed, along +x

    def pose_at(self, t: float) -> tuple[float, float, float]:
        return self.x0 + self.speed * t, self.y, 0.0 if self.speed >= 0 else np.pi


@dataclass
class StaticBox:
    """An annotated static object (for the sample_annotation table)."""

    inst: int
    cls: int
    centre: tuple[float, float, float]
    size_wlh: tuple[float, float, float]
    yaw: float


@dataclass
class EgoPath:
    speed: float
    weave_amp: float = 0.25
    weave_period: float = 8.0

    def pose_at(self, t: float) -> tuple[float, float, float]:
        w = 2 * np.pi / self.weave_period
        y = EGO_LANE_Y + self.weave_amp * np.sin(w * t)
        dy = self.weave_amp * w * np.cos(w * t)
        return self.speed * t, y, float(np.arctan2(dy, self.speed))


@dataclass
class World:
    static: Solids
    agents: list[Agent]
    static_boxes: list[StaticBox]
    ground: GroundLayout
    ego: EgoPath
    sun: np.ndarray
    instance_class: dict[int, int] = field(default_factory=dict)

    def solids_at(self, t: float) -> Solids:
        moved = {k: [getattr(self.static, k)] for k in ("boxes", "cones", "ellipsoids")}
        for a in self.agents:
            x, y, yaw = a.pose_at(t)
            for k, p in a.parts.kinds():
                moved[k].append(p.moved(x, y, yaw))
        return Solids(**{k: Parts.concat(k, v) for k, v in moved.items()})


class _Builder:
    """Collects parts of each kind; hands out instance ids."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.parts = {"boxes": [], "cones": [], "ellipsoids": []}
        self.next_inst = 1
        self.instance_class: dict[int, int] = {}

    def new_instance(self, cls: int) -> int:
        inst = self.next_inst
        self.next_inst += 1
        self.instance_class[inst] = cls
        return inst

    def add(self, kind: str, geom, cls: int, inst: int, color, tex: int) -> None:
        self.parts[kind].append((list(map(float, geom)), cls, inst, list(map(float, color)), tex))

    def solids(self) -> Solids:
        out = {}
        for kind, rows in self.parts.items():
            width = {"boxes": 7, "cones": 6, "ellipsoids": 5}[kind]
            out[kind] = Parts(
                kind,
                np.array([r[0] for r in rows], np.float64).reshape(-1, width),
                np.array([r[1] for r in rows], np.uint8),
                np.array([r[2] for r in rows], np.int32),
                np.array([r[3] for r in rows], np.float64).reshape(-1, 3),
                np.array([r[4] for r in rows], np.int32),
            )
        return Solids(**out)

    def place(self, template: Solids, x: float, y: float, yaw: float) -> None:
        """Add the parts of `template` (built in an object frame) at (x, y) with heading `yaw`."""
        for kind, p in template.kinds():
            q = p.moved(x, y, yaw)
            self.parts[kind] += [
                (list(g), int(c), int(i), list(col), int(t))
                for g, c, i, col, t in zip(q.geom, q.cls, q.inst, q.color, q.tex)
            ]

    def jitter(self, color, amount=0.06):
        return np.clip(np.asarray(color) + self.rng.uniform(-amount, amount, 3), 0, 1)


# ---------------------------------------------------------------------------------------------
# Object templates, in the object's own frame (x forward, origin on the ground at the centre).


def _vehicle(b: _Builder, cls: int, length: float, width: float, height: float, paint, inst: int) -> tuple:
    """Body and cabin (or cargo) boxes; returns the nuScenes size (w, l, h)."""
    if cls == C["car"]:
        # Body from 0.25 m to 1.05 m, glazed cabin on top set back a little. (Heights avoid the grid's
        # z faces at -1 + 0.4 k: the ego frame sits on the ground, so those would coincide exactly.)
        b.add("boxes", [0, 0, 0.65, length / 2, width / 2, 0.4, 0], cls, inst, paint, TEX_PAINT)
        b.add(
            "boxes",
            [-0.08 * length, 0, (1.05 + height) / 2, 0.28 * length, width / 2 - 0.1, (height - 1.05) / 2, 0],
            cls,
            inst,
            paint * 0.5 + 0.1,
            TEX_GLASS,
        )
    elif cls in (C["truck"], C["construction_vehicle"]):
        cab = 0.28 * length
        b.add(
            "boxes",
            [length / 2 - cab / 2, 0, (0.35 + height * 0.8) / 2, cab / 2, width / 2, (height * 0.8 - 0.35) / 2, 0],
            cls,
            inst,
            paint,
            TEX_PAINT,
        )
        cargo_color = paint if cls == C["construction_vehicle"] else np.array([0.8, 0.8, 0.78])
        b.add(
            "boxes",
            [-cab / 2, 0, (0.5 + height) / 2, (length - cab) / 2 - 0.1, width / 2, (height - 0.5) / 2, 0],
            cls,
            inst,
            cargo_color,
            TEX_METAL,
        )
    else:  # bus, trailer: one long box
        bottom = 0.3 if cls == C["bus"] else 0.65
        b.add(
            "boxes",
            [0, 0, (bottom + height) / 2, length / 2, width / 2, (height - bottom) / 2, 0],
            cls,
            inst,
            paint,
            TEX_PAINT if cls == C["bus"] else TEX_METAL,
        )
    return (width, length, height)


def _rider(b: _Builder, cls: int, inst: int, length: float, base_h: float, cloth) -> None:
    b.add(
        "boxes",
        [0, 0, base_h / 2 + 0.05, length / 2, 0.25 if cls == C["bicycle"] else 0.4, base_h / 2 - 0.05, 0],
        cls,
        inst,
        [0.15, 0.15, 0.17],
        TEX_METAL,
    )
    b.add("boxes", [-0.1, 0, base_h + 0.35, 0.2, 0.22, 0.35, 0], cls, inst, cloth, TEX_CLOTH)
    b.add("ellipsoids", [-0.05, 0, base_h + 0.85, 0.13, 0.15], cls, inst, [0.85, 0.7, 0.55], TEX_PLAIN)


def _pedestrian(b: _Builder, inst: int, cloth) -> None:
    c = C["pedestrian"]
    b.add("cones", [0, 0, 0.0, 1.45, 0.17, 0.25], c, inst, cloth, TEX_CLOTH)
    b.add("ellipsoids", [0, 0, 1.6, 0.12, 0.15], c, inst, [0.85, 0.68, 0.55], TEX_PLAIN)


def _free(spots: list, x: float, y: float, r: float, margin: float = 0.6) -> bool:
    return all((x - sx) ** 2 + (y - sy) ** 2 > (r + sr + margin) ** 2 for sx, sy, sr in spots)


def build_world(rng: np.random.Generator, x_range: tuple[float, float], ego_speed: float) -> World:
    """Draw one scene. `x_range` is the stretch of street that must be furnished (local metres).

    The steps draw from `rng` in a fixed order (same seed, same world)."""
    b = _Builder(rng)
    x_lo, x_hi = x_range
    length = x_hi - x_lo
    ground = GroundLayout(
        island_x=(x_lo + length * rng.uniform(0.25, 0.35), x_lo + length * rng.uniform(0.5, 0.6)),
        side_street_x=x_lo + length * rng.uniform(0.55, 0.75),
    )
    static_boxes: list[StaticBox] = []
    spots: list[tuple[float, float, float]] = []  # discs kept clear of small static objects
    for side in (-1, 1):
        _buildings(b, rng, ground, side, x_range)
        _walls(b, rng, ground, side, x_range, spots)
        _poles(b, rng, ground, side, x_range, spots)
        _trees(b, rng, ground, side, x_range, spots)
        _bushes(b, rng, ground, side, x_range, spots)
    _island_barriers(b, rng, ground, static_boxes)
    zone_x = x_lo + length * rng.uniform(0.55, 0.65)
    _construction_zone(b, rng, zone_x, static_boxes)
    _parked_vehicles(b, rng, x_range, zone_x, static_boxes)
    agents = _movers(b, rng, x_range, ego_speed)
    sun = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 0.8])
    world = World(b.solids(), agents, static_boxes, ground, EgoPath(ego_speed), sun / np.linalg.norm(sun))
    world.instance_class = dict(b.instance_class)
    return world


def _near_side_street(ground: GroundLayout, x: float, side: int, half: float) -> bool:
    return side > 0 and abs(x - ground.side_street_x) < SIDE_STREET_HALF + half + 1.0


FACADES = np.array([[0.78, 0.72, 0.62], [0.62, 0.35, 0.28], [0.7, 0.7, 0.72], [0.85, 0.8, 0.7], [0.5, 0.52, 0.56]])
PAINTS = np.array(
    [[0.7, 0.1, 0.1], [0.1, 0.2, 0.6], [0.85, 0.85, 0.85], [0.1, 0.1, 0.1], [0.5, 0.5, 0.55], [0.2, 0.45, 0.3]]
)


def _buildings(b: _Builder, rng, ground: GroundLayout, side: int, x_range) -> None:
    """Buildings along one side (manmade), with gaps; none across the side street."""
    x_lo, x_hi = x_range
    x = x_lo + rng.uniform(0, 6)
    while x < x_hi:
        w = rng.uniform(8, 18)
        if not _near_side_street(ground, x + w / 2, side, w / 2):
            depth, height = rng.uniform(8, 14), rng.uniform(6, 18)
            inner = BUILDING_INNER + rng.uniform(0, 1.5)
            inst = b.new_instance(C["manmade"])
            b.add(
                "boxes",
                [x + w / 2, side * (inner + depth / 2), height / 2, w / 2, depth / 2, height / 2, 0],
                C["manmade"],
                inst,
                b.jitter(FACADES[rng.integers(len(FACADES))]),
                TEX_FACADE,
            )
        gap = rng.uniform(2, 6)
        x += w + gap


def _walls(b: _Builder, rng, ground: GroundLayout, side: int, x_range, spots: list) -> None:
    """Walls along the terrain strip (manmade), leaving gaps for bushes."""
    x_lo, x_hi = x_range
    x = x_lo + rng.uniform(0, 10)
    while x < x_hi:
        w = rng.uniform(5, 10)
        if rng.random() < 0.5 and not _near_side_street(ground, x + w / 2, side, w / 2):
            inst = b.new_instance(C["manmade"])
            h = rng.uniform(1.2, 2.0)
            b.add(
                "boxes",
                [x + w / 2, side * 14.9, h / 2, w / 2, 0.15, h / 2, 0],
                C["manmade"],
                inst,
                b.jitter([0.66, 0.64, 0.6]),
                TEX_PLAIN,
            )
            spots.append((x + w / 2, side * 14.9, w / 2))
        x += w + rng.uniform(4, 10)


def _poles(b: _Builder, rng, ground: GroundLayout, side: int, x_range, spots: list) -> None:
    """Poles near the kerb, some with a sign (manmade)."""
    x_lo, x_hi = x_range
    x = x_lo + rng.uniform(0, 10)
    while x < x_hi:
        if not _near_side_street(ground, x, side, 0.5):
            inst = b.new_instance(C["manmade"])
            h, r = rng.uniform(5, 8), rng.uniform(0.1, 0.15)
            b.add("cones", [x, side * 8.6, 0, h, r, r * 0.8], C["manmade"], inst, [0.45, 0.47, 0.5], TEX_METAL)
            if rng.random() < 0.5:
                b.add(
                    "boxes",
                    [x, side * (8.6 - r - 0.03), h * 0.55, 0.35, 0.03, 0.3, 0],
                    C["manmade"],
                    inst,
                    [0.1, 0.3, 0.75],
                    TEX_PLAIN,
                )
            spots.append((x, side * 8.6, 0.4))
        x += rng.uniform(15, 24)


def _trees(b: _Builder, rng, ground: GroundLayout, side: int, x_range, spots: list) -> None:
    """Trees, a trunk and a crown (vegetation)."""
    x_lo, x_hi = x_range
    x = x_lo + rng.uniform(0, 8)
    while x < x_hi:
        y = side * (12.8 + rng.uniform(-0.3, 0.3))
        if not _near_side_street(ground, x, side, 2.5) and _free(spots, x, y, 0.3, 1.0):
            inst = b.new_instance(C["vegetation"])
            th, a, c = rng.uniform(2.6, 3.4), rng.uniform(1.4, 2.2), rng.uniform(1.5, 2.3)
            b.add("cones", [x, y, 0, th + 0.3, 0.22, 0.16], C["vegetation"], inst, [0.4, 0.28, 0.18], TEX_PLAIN)
            b.add(
                "ellipsoids",
                [x, y, th + 0.7 * c, a, c],
                C["vegetation"],
                inst,
                b.jitter([0.2, 0.45, 0.15]),
                TEX_FOLIAGE,
            )
            spots.append((x, y, 0.3))
        x += rng.uniform(9, 15)


def _bushes(b: _Builder, rng, ground: GroundLayout, side: int, x_range, spots: list) -> None:
    """Bushes on the terrain strip (vegetation), clear of walls, poles and trees."""
    x_lo, x_hi = x_range
    x = x_lo + rng.uniform(0, 5)
    while x < x_hi:
        y = side * rng.uniform(13.6, 14.2)
        a = rng.uniform(0.6, 1.0)
        if not _near_side_street(ground, x, side, a) and _free(spots, x, y, a, 0.5):
            inst = b.new_instance(C["vegetation"])
            c = rng.uniform(0.5, 0.8)
            b.add("ellipsoids", [x, y, 0.8 * c, a, c], C["vegetation"], inst, b.jitter([0.25, 0.5, 0.2]), TEX_FOLIAGE)
            spots.append((x, y, a))
        x += rng.uniform(4, 9)


def _island_barriers(b: _Builder, rng, ground: GroundLayout, static_boxes: list) -> None:
    """Barriers along the traffic island."""
    x = ground.island_x[0] + 1.5
    while x < ground.island_x[1] - 1.5:
        inst = b.new_instance(C["barrier"])
        b.add("boxes", [x, 0, 0.45, 1.0, 0.22, 0.45, 0], C["barrier"], inst, [0.9, 0.9, 0.88], TEX_STRIPES)
        static_boxes.append(StaticBox(inst, C["barrier"], (x, 0.0, 0.45), (0.44, 2.0, 0.9), 0.0))
        x += rng.uniform(2.6, 3.4)


def _construction_zone(b: _Builder, rng, zone_x: float, static_boxes: list) -> None:
    """The ego side's outer lane at zone_x: a construction vehicle and a line of cones."""
    inst = b.new_instance(C["construction_vehicle"])
    parts = _Builder(rng)
    parts.next_inst = inst
    size = _vehicle(parts, C["construction_vehicle"], 6.5, 2.5, 3.2, np.array([0.95, 0.7, 0.1]), inst)
    b.place(parts.solids(), zone_x, PARK_LANE_Y, 0.0)
    static_boxes.append(StaticBox(inst, C["construction_vehicle"], (zone_x, PARK_LANE_Y, 1.6), size, 0.0))
    for k in range(-3, 4):
        cx = zone_x + 3.0 * k
        inst = b.new_instance(C["traffic_cone"])
        b.add("cones", [cx, -4.6, 0, 0.75, 0.2, 0.04], C["traffic_cone"], inst, [1.0, 0.45, 0.05], TEX_STRIPES)
        static_boxes.append(StaticBox(inst, C["traffic_cone"], (cx, -4.6, 0.375), (0.4, 0.4, 0.75), 0.0))


def _parked_vehicles(b: _Builder, rng, x_range, zone_x: float, static_boxes: list) -> None:
    """Parked cars, a truck, a bus and a trailer in the outer lane, in random order, clear of the cones."""
    x_lo, x_hi = x_range
    parked = [C["car"], C["car"], C["truck"], C["car"], C["bus"], C["trailer"], C["car"], C["car"]]
    dims = {
        C["car"]: (4.5, 1.9, 1.6),
        C["truck"]: (7.0, 2.4, 3.0),
        C["bus"]: (11.5, 2.6, 3.3),
        C["trailer"]: (8.5, 2.5, 3.6),
    }
    order = list(rng.permutation(len(parked)))
    x = x_lo + rng.uniform(5, 15)
    for i in order:
        cls = parked[i]
        L, W, H = dims[cls]
        if abs(x + L / 2 - zone_x) < L / 2 + 3.25 + 9.5:  # keep clear of the cone line
            x = zone_x + 3.25 + 10.0
        if x + L > x_hi:
            break
        inst = b.new_instance(cls)
        parts = _Builder(rng)
        paint = PAINTS[rng.integers(len(PAINTS))] if cls != C["bus"] else np.array([0.9, 0.75, 0.1])
        size = _vehicle(parts, cls, L, W, H, paint, inst)
        yaw = rng.uniform(-0.03, 0.03)
        b.place(parts.solids(), x + L / 2, PARK_LANE_Y, yaw)
        static_boxes.append(StaticBox(inst, cls, (x + L / 2, PARK_LANE_Y, H / 2), size, yaw))
        x += L + rng.uniform(1.5, 4.0)


def _movers(b: _Builder, rng, x_range, ego_speed: float) -> list[Agent]:
    """The moving agents: a car ahead of the ego, oncoming cars and a motorcyclist, cyclists, pedestrians."""
    x_lo, x_hi = x_range
    agents: list[Agent] = []

    def agent(cls: int, L: float, W: float, H: float, x0: float, y: float, speed: float, builder) -> None:
        inst = b.new_instance(cls)
        parts = _Builder(rng)
        parts.next_inst = inst
        builder(parts, inst)
        agents.append(Agent(parts.solids(), inst, cls, (W, L, H), H / 2, x0, y, speed))

    def car_builder(paint):
        return lambda p, inst: _vehicle(p, C["car"], 4.5, 1.9, 1.6, paint, inst)

    agent(C["car"], 4.5, 1.9, 1.6, 15.0, EGO_LANE_Y, ego_speed + 0.8, car_builder(PAINTS[rng.integers(len(PAINTS))]))
    v_on = -rng.uniform(7, 9)
    x = x_hi + 40
    for k in range(5):
        if k == 2:
            agent(
                C["motorcycle"],
                2.1,
                0.8,
                1.7,
                x,
                ONCOMING_Y,
                v_on,
                lambda p, inst: _rider(p, C["motorcycle"], inst, 2.1, 0.85, b.jitter([0.2, 0.2, 0.25])),
            )
            x -= rng.uniform(15, 25)
        agent(C["car"], 4.5, 1.9, 1.6, x, ONCOMING_Y, v_on, car_builder(PAINTS[rng.integers(len(PAINTS))]))
        x -= rng.uniform(18, 30)
    v_bike = -rng.uniform(3.5, 5.0)
    for x0 in (x_hi - rng.uniform(0, 15), x_hi - rng.uniform(30, 45)):
        agent(
            C["bicycle"],
            1.7,
            0.6,
            1.75,
            x0,
            BIKE_Y,
            v_bike,
            lambda p, inst: _rider(p, C["bicycle"], inst, 1.7, 0.9, b.jitter([0.3, 0.3, 0.6], 0.2)),
        )
    for side in (-1, 1):
        for lane_y in (9.3, 10.0, 10.7):
            speed = rng.uniform(1.1, 1.6) * (1 if rng.random() < 0.5 else -1)
            x0 = rng.uniform(x_lo + 20, x_hi - 10)
            agent(
                C["pedestrian"],
                0.5,
                0.5,
                1.75,
                x0,
                side * lane_y,
                speed,
                lambda p, inst: _pedestrian(p, inst, b.jitter([0.3, 0.3, 0.35], 0.25)),
            )
    return agents
