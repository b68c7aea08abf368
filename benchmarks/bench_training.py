"""Training step cost of EasyOcc's 3D loss against a volume-rendering loss of the kind OccNeRF trains with,
same model, same batch (one keyframe of the demo world: 6 cameras).

    python benchmarks/bench_training.py [--preset auto|tiny|paper] [--steps 5] [--ray-stride 4] [--samples 128]

`3d`: CE + Lovasz against the label volume (ops/model/losses.py). `rendering`: rays through every
ray-stride-th pixel of every camera, `samples` points each, occupancy and class probabilities composited
into depth and classes, L1 + CE against the rendered truth's depth and class maps (benchmarks/baselines/rendering_loss.py).
Each variant runs in its own process: the time is the mean of `steps` optimizer steps after `warmup`
(2) warm-up steps; memory is the peak GPU allocation (GPU) or the process's peak resident set (CPU, which includes
the Python and library baseline, also printed). preset auto = paper on a GPU, tiny on a CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one(args) -> dict:
    import resource

    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    from benchmarks.baselines.rendering_loss import RenderingLoss
    from ops.data.keyframes import scene_keyframes
    from ops.data.nuscenes import open_nuscenes
    from ops.model.config import preset
    from ops.model.data import OccDataset, PseudoLabels
    from ops.model.losses import OccupancyLoss
    from ops.model.network import EasyOcc

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    device = torch.device(args.device)
    cfg = preset(args.preset, pretrained=None)  # random weights: the cost does not depend on them
    nusc = open_nuscenes(args.dataroot, "v1.0-mini")
    kf = scene_keyframes(nusc, nusc.scene[0]["name"])[0]
    ds = OccDataset(args.dataroot, [kf], cfg.image_size, PseudoLabels.from_occ3d(Path(args.dataroot) / "gts"))
    s = ds[0]
    images, proj, labels = s["images"][None].to(device), s["projection"][None].to(device), s["labels"][None].to(device)
    torch.manual_seed(0)
    model = EasyOcc(cfg).to(device).train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    if args.loss == "3d":
        loss_fn = OccupancyLoss()

        def loss_of(logits):
            return loss_fn(logits, labels)["loss"]
    else:
        h, w = cfg.image_size
        depth, classes = [], []
        for im in kf.images:  # the rendered truth's maps, resized (nearest) to the input: stand-ins for perception
            with np.load(Path(args.dataroot) / "truth" / (im.filename.rsplit(".", 1)[0] + ".npz")) as t:
                ys = (np.arange(h) + 0.5) * t["depth"].shape[0] / h
                xs = (np.arange(w) + 0.5) * t["depth"].shape[1] / w
                iy, ix = ys.astype(int)[:, None], xs.astype(int)[None]
                depth.append(t["depth"][iy, ix])
                classes.append(t["semantics"][iy, ix])
        d = torch.from_numpy(np.stack(depth))[None].to(device)
        c = torch.from_numpy(np.stack(classes).astype(np.int64))[None].to(device)
        loss_fn = RenderingLoss(cfg.grid_lower, cfg.voxel_size, cfg.image_size, args.ray_stride, args.samples)

        def loss_of(logits):
            return loss_fn(logits, proj, d, c)["loss"]

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )

    def step():
        optim.zero_grad(set_to_none=True)
        with autocast:
            logits = model(images, proj)
        loss = loss_of(logits)
        loss.backward()
        optim.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    out = {
        "loss": args.loss,
        "preset": args.preset,
        "device": str(device),
        "step_s": float(np.mean(times)),
        "step_s_min": float(np.min(times)),
        "baseline_rss_mib": base_rss,
        "peak_mib": (
            torch.cuda.max_memory_allocated() / 2**20
            if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ),
    }
    if args.loss == "rendering":
        h, w = cfg.image_size
        out["rays"] = (
            6
            * len(range(args.ray_stride // 2, h, args.ray_stride))
            * len(range(args.ray_stride // 2, w, args.ray_stride))
        )
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataroot", default=str(REPO / "data" / "demo_world"))
    ap.add_argument("--preset", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--ray-stride", type=int, default=4)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--loss", default=None, help=argparse.SUPPRESS)  # internal: run one variant in this process
    args = ap.parse_args()
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.preset == "auto":
        args.preset = "paper" if args.device.startswith("cuda") else "tiny"
    if args.loss:
        print(json.dumps(one(args)))
        return
    rows = []
    for loss in ("3d", "rendering"):
        cmd = [sys.executable, __file__, "--loss", loss] + [
            f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k != "loss"
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if out.returncode:
            sys.exit(f"{loss} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    a, b = rows
    print(
        f"preset {args.preset}, device {args.device}, one keyframe (6 cameras) per step, {args.steps} timed steps "
        f"after {args.warmup} warm-up"
    )
    print("| loss | rays x samples | step (s) | min (s) | peak memory (MiB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        rays = f"{r['rays']:,} x {args.samples}" if "rays" in r else "-"
        print(f"| {r['loss']} | {rays} | {r['step_s']:.3f} | {r['step_s_min']:.3f} | {r['peak_mib']:.0f} |")
    print(
        f"rendering / 3d: {b['step_s'] / a['step_s']:.2f}x the step time, {b['peak_mib'] / a['peak_mib']:.2f}x the peak memory"
        + (
            ""
            if args.device.startswith("cuda")
            else f" (CPU peaks include a {a['baseline_rss_mib']:.0f} MiB process baseline)"
        )
    )


if __name__ == "__main__":
    main()
