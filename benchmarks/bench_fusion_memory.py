"""Peak memory and time of streaming a real-size scene through the fusion (CPU).

    python benchmarks/bench_fusion_memory.py [--keyframes 40] [--width 1600 --height 900] [--free-space projection]
        [--evidence log_odds] [--history 13 --future 13] [--surface tsdf|none] [--consistency on|off] [--compile auto|on|off]
        [--far-compression C]

Depth and class maps are synthesised analytically for the nuScenes rig (flat road, sidewalks and
building walls 12 m either side, the ego driving 3 m per keyframe), so the measure is the fusion's
own: each keyframe lifted once, 14-keyframe windows, per-frame accumulation. Peak resident memory
is read from the kernel (ru_maxrss) after the run.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

from pipelines.settings import data_dir

# torch.compile's cache goes to the data dir, like everything else easyocc writes.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(data_dir() / "torch_compile_cache"))

from ops.data.keyframes import ImageRecord, KeyframeRecord
from ops.demo_world.render import camera_rig
from ops.fusion.config import FusionConfig
from ops.fusion.scene import SceneFuser
from ops.geometry import make_transform, rot_z
from ops.occ3d import CLASS_ID, FREE
from ops.perception.simulated import compress_far


def street_maps(cam, T_ego_cam):
    """z-depth and classes of a straight street seen by one camera (ego frame geometry)."""
    v, u = np.mgrid[0 : cam.height, 0 : cam.width].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(cam.K).T  # camera frame, z = 1
    d = rays @ T_ego_cam[:3, :3].T
    o = T_ego_cam[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(d[..., 2] < -1e-9, -o[2] / d[..., 2], np.inf)
        t_wall = np.where(np.abs(d[..., 1]) > 1e-9, (np.sign(d[..., 1]) * 12.0 - o[1]) / d[..., 1], np.inf)
    t_wall = np.where(o[2] + t_wall * d[..., 2] < 15.0, t_wall, np.inf)
    t = np.minimum(t_ground, t_wall)
    depth = np.where(np.isfinite(t) & (t < 200), t, 0).astype(np.float32)  # z-depth: rays have z = 1
    y = o[1] + t * d[..., 1]
    cls = np.where(
        t_wall < t_ground,
        CLASS_ID["manmade"],
        np.where(np.abs(y) < 7, CLASS_ID["driveable_surface"], CLASS_ID["sidewalk"]),
    )
    return depth, np.where(depth > 0, cls, FREE).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keyframes", type=int, default=40)
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--free-space", default=FusionConfig.free_space, help="raycast, projection or empty_is_free")
    ap.add_argument("--evidence", default=FusionConfig.evidence, help="log_odds or votes")
    ap.add_argument("--history", type=int, default=FusionConfig.history)
    ap.add_argument("--future", type=int, default=FusionConfig.future)
    ap.add_argument("--stride", type=int, default=None, help="lifting stride (default: FusionConfig's, None = auto)")
    ap.add_argument("--ray-stride", type=int, default=1)
    ap.add_argument(
        "--labels",
        type=int,
        default=0,
        help="make only this many labels in the middle of the scene "
        "(full windows), and report the streaming steady state: one keyframe lifted + one label fused",
    )
    ap.add_argument(
        "--surface", default=FusionConfig.surface, help="the surface rule (tsdf, or none as before 2026-12-07)"
    )
    ap.add_argument(
        "--consistency",
        choices=["on", "off"],
        default="on" if FusionConfig.consistency else "off",
        help="cross-view depth consistency (a second pass; on by default)",
    )
    ap.add_argument(
        "--far-compression",
        type=float,
        default=0.0,
        help="depth beyond 20 m multiplied by (d / 20)^-c, as the simulated presets do, so that the consistency "
        "has a correction to apply (its range curve; a per-image scale the ground scale takes back first) and "
        "runs its second pass; 0: exact depth, whose estimates are negligible (one pass)",
    )
    ap.add_argument(
        "--compile",
        choices=["auto", "on", "off"],
        default="auto",
        help="torch.compile the voting and ray walk (auto: when a C++ compiler is found)",
    )
    args = ap.parse_args()
    rig = camera_rig(args.width, args.height)
    maps = {ch: street_maps(cam, cam.T_ego_cam) for ch, cam in rig.items()}
    kfs = []
    for k in range(args.keyframes):
        pose = make_transform(rot_z(0.6), (1500.0 + 3.0 * k * np.cos(0.6), 900.0 + 3.0 * k * np.sin(0.6), 0.0))
        ts = 1_000_000 + 500_000 * k
        imgs = [
            ImageRecord(ch, f"{ch}/{k}.jpg", ts, cam.width, cam.height, cam.K, cam.T_ego_cam, pose)
            for ch, cam in rig.items()
        ]
        kfs.append(KeyframeRecord("scene-synth", f"k{k}", ts, pose, imgs))
    cfg = FusionConfig(
        free_space=args.free_space,
        evidence=args.evidence,
        history=args.history,
        future=args.future,
        stride=args.stride,
        ray_stride=args.ray_stride,
        surface=args.surface,
        consistency=args.consistency == "on",
        compile_cpu={"auto": None, "on": True, "off": False}[args.compile],
    )
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    points, steps = 0, {}
    read = []
    if args.far_compression:
        for depth, _ in maps.values():
            compress_far(depth, args.far_compression, 20.0)

    def perception(kf):
        read.append(kf.token)
        return [maps[img.channel] for img in kf.images]

    fuser = SceneFuser(kfs, perception, cfg)
    todo = range(args.keyframes)
    if args.labels:
        mid = args.keyframes // 2
        todo = range(mid - args.labels // 2, mid - args.labels // 2 + args.labels)
    for i in todo:
        label = fuser.label(i)
        points += label.stats["points"]
        for k, v in label.seconds.items():
            steps[k] = steps.get(k, 0.0) + v
    if args.labels:
        lift_one = (steps.get("read", 0) + steps.get("lift", 0)) / max(len(read), 1)
        fuse_one = sum(v for k, v in steps.items() if k not in ("read", "lift")) / len(todo)
        print(
            f"steady state a label: lift one keyframe {lift_one:.2f} s + fuse the window {fuse_one:.2f} s = "
            f"{lift_one + fuse_one:.2f} s; {points / len(todo) / 1e6:.1f} M points a label"
        )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    n = len(todo)
    print(
        f"| {args.keyframes} keyframes x 6 x {args.width}x{args.height} | {cfg.free_space}, {cfg.evidence}, "
        f"surface {cfg.surface}" + (", consistency" if cfg.consistency else "") + ", "
        f"{cfg.history} past + {cfg.future} future, ray_stride {cfg.ray_stride}, "
        f"compile {args.compile} | {points / n / 1e6:.1f} M points a label | "
        f"{seconds / n:.2f} s a label ({n} labels) | peak RSS {peak:.2f} GiB (maps and rig {base_rss:.2f} GiB) | "
        f"torch threads {torch.get_num_threads()} |"
    )
    print("seconds a label per step: " + ", ".join(f"{k} {v / n:.2f}" for k, v in steps.items()))
    if cfg.consistency:
        print(
            f"the last label's window: {label.stats.get('view_scales_applied', 0)} images rescaled, "
            f"range curve {label.stats.get('range_fit', '-')} (far compression {args.far_compression})"
        )


if __name__ == "__main__":
    main()
