"""Per-label time of the Triton kernels on a GPU at the real nuScenes size, against the bandwidth floor.

    python benchmarks/bench_kernels_gpu.py [--width 1600 --height 900] [--repeat 5]
    TRITON_INTERPRET=1 python benchmarks/bench_kernels_gpu.py --device cpu --width 160 --height 90 --repeat 1
        (a check that the script runs; interpreter timings mean nothing)

One label's window (14 keyframes x 6 cameras) of pixel-ordered lifted points, from the synthetic
street of bench_fusion_memory.py (road, sidewalks, walls; surface filling on), kept on the device.
Per label:
  - vote kernel (kernels/vote.py) with run pre-aggregation, and with one atomic per point;
  - the torch path on the same device (ops.fusion.vote.vote_counts_in_frame: bincount over voxel*18+class);
  - the free-space ray walk kernel (kernels/raywalk.py) over every pixel ray of the window, and its torch twin
    (ops.fusion.raycast.free_crossings) on the same device; both counts are checked equal, as the votes are.
The floor: reading fp16 depth + uint8 class once, 3 bytes a pixel, at the GPU's
memory bandwidth; `input floor` is the same for what the vote kernel actually reads (lifted points,
12 + 1 bytes each), since the lifted points are shared by the 14 labels that use them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fusion_memory import street_maps  # noqa: E402

from ops.data.keyframes import ImageRecord, KeyframeRecord  # noqa: E402
from ops.demo_world.render import camera_rig  # noqa: E402
from ops.fusion.config import FusionConfig  # noqa: E402
from ops.fusion.lift import lift_keyframe, move_points  # noqa: E402
from ops.fusion.raycast import free_crossings  # noqa: E402
from ops.fusion.vote import vote_counts_in_frame  # noqa: E402
from ops.geometry import invert_transform, make_transform, rot_z  # noqa: E402
from ops.occ3d import GRID, NUM_CLASSES  # noqa: E402

# Peak memory bandwidth (GB/s) of the GPUs we may be lent (vendor figures).
BANDWIDTH_GBS = {"H100": 3350.0, "H200": 4800.0, "A100": 2039.0}


def sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, repeat: int, device: str):
    fn()  # warm-up: compiles the kernel
    sync(device)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--keyframes", type=int, default=14)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--bandwidth-gbs", type=float, default=None, help="default: from the GPU's name")
    args = ap.parse_args()
    from kernels.raywalk import free_crossings_triton
    from kernels.vote import vote_counts_triton

    dev = args.device
    name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "CPU (Triton interpreter)"
    bw = args.bandwidth_gbs or next((v for k, v in BANDWIDTH_GBS.items() if k in name), 3350.0)
    rig = camera_rig(args.width, args.height)
    maps = {ch: street_maps(cam, cam.T_ego_cam) for ch, cam in rig.items()}
    cfg = FusionConfig(device=dev, outlier_filter=False)
    anchor = None
    frames = []
    for k in range(args.keyframes):
        pose = make_transform(rot_z(0.6), (1500.0 + 3.0 * k * np.cos(0.6), 900.0 + 3.0 * k * np.sin(0.6), 0.0))
        imgs = [
            ImageRecord(ch, f"{ch}/{k}.jpg", 10**6 + 5 * 10**5 * k, cam.width, cam.height, cam.K, cam.T_ego_cam, pose)
            for ch, cam in rig.items()
        ]
        kf = KeyframeRecord("scene-synth", f"k{k}", 10**6 + 5 * 10**5 * k, pose, imgs)
        anchor = invert_transform(pose) if anchor is None else anchor
        frames.append(lift_keyframe(kf, [maps[img.channel] for img in imgs], anchor, cfg))
    T = invert_transform(frames[-1].T_anchor_ego)
    pixels = args.keyframes * 6 * args.width * args.height
    points = sum(len(f.points) for f in frames)
    rays = [(move_points(T, o), move_points(T, e)) for o, e in (f.rays() for f in frames)]
    n_rays = sum(len(o) for o, _ in rays)

    def votes(aggregate):
        return lambda: sum(
            vote_counts_triton(f.points, f.classes, T, GRID, NUM_CLASSES, aggregate=aggregate) for f in frames
        )

    def torch_votes():
        return sum(vote_counts_in_frame(f.points, f.classes, T) for f in frames)

    def walk():
        return sum(free_crossings_triton(o, e, GRID) for o, e in rays)

    t_agg, c_agg = timed(votes(True), args.repeat, dev)
    t_one, c_one = timed(votes(False), args.repeat, dev)
    t_torch, c_torch = timed(torch_votes, args.repeat, dev)
    assert torch.equal(c_agg.long(), c_torch) and torch.equal(c_one.long(), c_torch), "kernel and twin disagree"
    t_walk, c_walk = timed(walk, args.repeat, dev)
    t_twalk, c_twalk = timed(lambda: sum(free_crossings(o, e, GRID) for o, e in rays), args.repeat, dev)
    assert torch.equal(c_walk.long(), c_twalk.long()), "ray walk kernel and twin disagree"
    floor = pixels * 3 / (bw * 1e9)
    input_floor = points * 13 / (bw * 1e9)
    print(
        f"{name}, {time.strftime('%Y-%m-%d')}, bandwidth {bw:.0f} GB/s; {args.keyframes} x 6 x {args.width}x{args.height} "
        f"= {pixels / 1e6:.1f} M pixels, {points / 1e6:.1f} M lifted points (filling on), {n_rays / 1e6:.1f} M rays"
    )
    print(f"floor (3 B/pixel): {floor * 1e3:.3f} ms; input floor (13 B/lifted point): {input_floor * 1e3:.3f} ms")
    print("| step, one label | time | x floor | x input floor |")
    print("|---|---|---|---|")
    for label, t in [
        ("vote kernel, run pre-aggregation", t_agg),
        ("vote kernel, one atomic per point", t_one),
        ("torch bincount on the device", t_torch),
        ("ray walk kernel (raycast free space)", t_walk),
        ("torch ray walk on the device (the kernel's twin)", t_twalk),
    ]:
        print(f"| {label} | {t * 1e3:.3f} ms | {t / floor:.1f}x | {t / input_floor:.1f}x |")


if __name__ == "__main__":
    main()
