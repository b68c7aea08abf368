"""Bytes per image of the stored maps, projected to v1.0-trainval, and what each stored form of depth
does to the labels (ops/storage/map_encoding.py).

    python benchmarks/bench_storage.py --dataroot DIR [--version v1.0-mini] [--images 60]
                                       [--presets perfect,realistic] [--label-keyframes 8]

Part 1 writes the first `--images` camera images' maps of the dataroot (SIMULATED perception with
each preset), and the backends' confidence maps stored beside them (uint8, zstd; the depth's at the
depth's default stride), into real Zarr arrays on disk, one chunk per image with the stage's
compressors, and counts the chunk files' bytes. Bytes per pixel are projected to 1600 x 900 and the 204,894 keyframe
images of v1.0-trainval (34,149 samples x 6 cameras).

Part 2 fuses the first `--label-keyframes` keyframes of the first scene from perception that went
through each stored form and back, and counts the label voxels that differ from the labels of
full-precision float32 depth with the same fusion (the semantics, including observed/unobserved, over
all 640,000 voxels of each keyframe), and the mIoU-17 (camera mask) of each against the Occ3D truth.
`cm:2` on images of up to 800 px stores every 2nd pixel although the fusion lifts every pixel there,
the worst case of a stride; the last two rows lift every 2nd pixel, as the fusion does at nuScenes'
1600 px, where `cm` stores every 2nd pixel by default.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np

TRAINVAL_IMAGES = 34_149 * 6
NUSCENES_PIXELS = 1600 * 900
FORMS = ("float32:1", "float16:1", "mm:1", "cm:1", "cm:2")


def chunk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name != "zarr.json")


def stored_bytes(maps: list[np.ndarray], dtype, compressors, root: Path, name: str) -> int:
    import zarr

    arr = zarr.create_array(
        store=str(root / name),
        shape=(len(maps),) + maps[0].shape,
        chunks=(1,) + maps[0].shape,
        dtype=dtype,
        compressors=compressors,
        fill_value=0,
    )
    for i, m in enumerate(maps):
        arr[i] = m
    return chunk_bytes(root / name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataroot", required=True)
    ap.add_argument("--version", default="v1.0-mini")
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--presets", default="perfect,realistic")
    ap.add_argument("--label-keyframes", type=int, default=8)
    args = ap.parse_args()

    from ops.data.keyframes import scene_keyframes
    from ops.data.nuscenes import open_nuscenes
    from ops.perception.runner import simulated_perception
    from ops.storage.map_encoding import parse_depth_encoding

    nusc = open_nuscenes(args.dataroot, args.version)
    kfs = scene_keyframes(nusc, nusc.scene[0]["name"])
    im = kfs[0].images[0]
    h, w = im.height, im.width
    print(f"dataroot {args.dataroot} ({args.version}), images {w} x {h}; {platform.processor() or platform.machine()}")
    print("\n### Bytes per image\n")
    print(
        "| perception | map | stored as | bytes / image | bytes / pixel | x float32 | trainval keyframes at 1600 x 900 |"
    )
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        seen = simulated_perception(args.dataroot, preset)
        depths, sems, sem_confs, depth_confs = [], [], [], []
        for kf in kfs:
            for d, s, sc, dc in seen(kf):
                depths.append(d)
                sems.append(s)
                sem_confs.append(sc)
                depth_confs.append(dc)
            if len(depths) >= args.images:
                break
        depths, sems = depths[: args.images], sems[: args.images]
        default = parse_depth_encoding("cm")
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            n = stored_bytes(sems, np.uint8, "auto", root, "sem") / len(sems)
            print(
                f"| {preset} | classes | uint8, zstd | {n:,.0f} | {n / (h * w):.3f} | - | "
                f"{n / (h * w) * NUSCENES_PIXELS * TRAINVAL_IMAGES / 1e9:.1f} GB |"
            )
            for what, confs, keep in (
                ("class confidence", sem_confs[: args.images], lambda c: c),
                ("depth confidence", depth_confs[: args.images], default.keep),
            ):
                n = stored_bytes([keep(c) for c in confs], np.uint8, "auto", root, what) / len(confs)
                form = "uint8, zstd" + ("" if what.startswith("class") else f", stride of cm ({default.stride_for(w)})")
                print(
                    f"| {preset} | {what} | {form} | {n:,.0f} | {n / (h * w):.3f} | - | "
                    f"{n / (h * w) * NUSCENES_PIXELS * TRAINVAL_IMAGES / 1e9:.1f} GB |"
                )
            base = None
            for form in FORMS:
                enc = parse_depth_encoding(form)
                n = stored_bytes([enc.encode(d) for d in depths], enc.dtype, enc.compressors(), root, form) / len(
                    depths
                )
                base = base or n
                # per full-resolution pixel, so that a stride's saving shows
                print(
                    f"| {preset} | depth | {form} | {n:,.0f} | {n / (h * w):.3f} | {n / base:.2f} | "
                    f"{n / (h * w) * NUSCENES_PIXELS * TRAINVAL_IMAGES / 1e9:.1f} GB |"
                )
    labels(args, nusc, kfs)


def labels(args, nusc, kfs) -> None:
    from ops.evaluation.metrics import Occ3DAccumulator
    from ops.fusion.config import FusionConfig
    from ops.fusion.scene import SceneFuser
    from ops.occ3d import as_occ3d_semantics
    from ops.perception.runner import simulated_perception
    from ops.storage.map_encoding import decode_depth, parse_depth_encoding
    from ops.storage.occ3d_layout import FrameRef, load_labels, truth_dir

    n = min(args.label_keyframes, len(kfs))
    print(f"\n### Labels from each stored form ({n} keyframes of {kfs[0].scene}, `realistic` perception)\n")
    print("| fusion lifts | depth stored as | voxels differing from float32 | of observed voxels | mIoU-17 (camera) |")
    print("|---|---|---|---|---|")
    seen = simulated_perception(args.dataroot, "realistic")
    cache = {kf.token: seen(kf) for kf in kfs}
    gts = truth_dir(args.dataroot)
    # the default fusion (every pixel up to 800 px), then one lifting every 2nd pixel, as at 1600 px
    runs = [(None, form) for form in FORMS] + [(2, "float32:1"), (2, "cm:2")]
    reference = {}
    for stride, form in runs:
        enc = parse_depth_encoding(form)

        def perception(kf, enc=enc):
            return [
                (decode_depth(enc.encode(d), enc.attrs(d.shape[1]), d.shape), s, sc, dc)
                for d, s, sc, dc in cache[kf.token]
            ]

        fuser = SceneFuser(kfs, perception, FusionConfig(stride=stride))
        out = [fuser.label(i) for i in range(n)]
        acc = Occ3DAccumulator()
        for kf, lab in zip(kfs, out):
            path = FrameRef(kf.scene, kf.token).path(gts)
            if path.is_file():
                gt = load_labels(path, ("semantics", "mask_camera", "mask_lidar"))
                acc.update(as_occ3d_semantics(lab.semantics), gt["semantics"], gt["mask_camera"], gt["mask_lidar"])
        sems = np.stack([lab.semantics for lab in out])
        ref = reference.setdefault(stride, sems)
        differ = int((sems != ref).sum())
        observed = int((ref != 255).sum())
        miou = acc.result()["masks"]["camera"]["miou17"] if acc.frames else float("nan")
        lifts = "every pixel (auto at this width)" if stride is None else f"every {stride}nd pixel"
        print(
            f"| {lifts} | {form} | {differ:,} of {sems.size:,} ({100 * differ / sems.size:.3f} %) | "
            f"{100 * differ / max(observed, 1):.3f} % | {100 * miou:.2f} |"
        )


if __name__ == "__main__":
    main()
