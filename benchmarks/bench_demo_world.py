"""Demo world: generation time, size on disk and self-consistency, for a config (default: the default).

python benchmarks/bench_demo_world.py [--keyframes 20] [--image-width 320 --image-height 180] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from ops.demo_world.generate import DemoWorldConfig, generate_demo_world


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keyframes", type=int, default=DemoWorldConfig.keyframes)
    ap.add_argument("--image-width", type=int, default=DemoWorldConfig.image_width)
    ap.add_argument("--image-height", type=int, default=DemoWorldConfig.image_height)
    ap.add_argument("--keep", help="write the world here and keep it")
    args = ap.parse_args()
    cfg = DemoWorldConfig(keyframes=args.keyframes, image_width=args.image_width, image_height=args.image_height)
    tmp = None if args.keep else tempfile.mkdtemp()
    root = Path(args.keep or tmp) / "demo_world"
    try:
        start = time.perf_counter()
        info = generate_demo_world(root, cfg, force=True)
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        from nuscenes.nuscenes import NuScenes

        from ops.demo_world.verify import consistency_report

        t = time.perf_counter()
        nusc = NuScenes(version=cfg.version, dataroot=str(root), verbose=False)
        load_s = time.perf_counter() - t
        r = consistency_report(nusc, root)
        print(
            f"demo world, {len(info['scenes'])} scenes x {cfg.keyframes} keyframes, 6 cameras at "
            f"{cfg.image_width}x{cfg.image_height}, {os.cpu_count()} cores"
        )
        print("| measure | value |\n|---|---|")
        print(f"| generation | {seconds:.1f} s |")
        print(f"| size on disk | {size / 2**20:.1f} MiB in {info['files'] + 14} files |")
        print(f"| nuscenes-devkit load | {load_s:.2f} s |")
        print(f"| truth pixels back-projected | {r.pixels} |")
        print(f"| ... landing on a voxel of their class | {r.same_voxel:.4%} |")
        print(f"| ... counting the 26 neighbours | {r.with_neighbours:.4%} |")
        print(f"| ... landing inside mask_camera | {r.in_mask_camera:.4%} |")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
