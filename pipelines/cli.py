"""The `easyocc` command line: `easyocc score ...` and `easyocc demo-world ...`.

    easyocc score --pred PRED_DIR --gt GT_DIR [--json OUT.json] [--split mini_val | --scenes a,b] [--allow-missing]
    easyocc demo-world [--dataroot DIR] [--seed 0] [--keyframes 20] [--force]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

from pipelines.settings import default_data_dir


def _split_scenes(split: str) -> list[str]:
    from nuscenes.utils.splits import create_splits_scenes

    splits = create_splits_scenes()
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; nuscenes-devkit knows {sorted(splits)}")
    return list(splits[split])


def cmd_score(args: argparse.Namespace) -> int:
    from ops.metrics import format_table
    from ops.occ3d_io import score_directories

    scenes = None
    if args.split and args.scenes:
        raise ValueError("give --split or --scenes, not both")
    if args.split:
        scenes = _split_scenes(args.split)
        present = {p.name for p in Path(args.gt).iterdir() if p.is_dir()} if Path(args.gt).is_dir() else set()
        scenes = [s for s in scenes if s in present] or scenes
    elif args.scenes:
        scenes = [s for s in args.scenes.split(",") if s]
    start = time.time()
    result = score_directories(args.pred, args.gt, scenes=scenes, allow_missing=args.allow_missing,
                               workers=args.workers)
    seconds = time.time() - start
    print(format_table(result))
    if result["skipped"]:
        print(f"skipped (missing from predictions): {result['skipped']} frame(s)")
    voxels = result["masks"]["none"]["voxels"]
    print(f"scored {result['frames']} frames, {voxels} voxels in {seconds:.2f} s ({voxels / max(seconds, 1e-9) / 1e6:.1f} M voxels/s)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(_json_safe(result), indent=2, sort_keys=True, allow_nan=False))
        print(f"wrote {args.json}")
    return 0


def _json_safe(obj):
    """NaN (a class absent from truth and prediction) becomes null: JSON has no NaN."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def cmd_demo_world(args: argparse.Namespace) -> int:
    from ops.demo_world.generate import DemoWorldConfig, generate_demo_world

    overrides = {f.name: getattr(args, f.name) for f in fields(DemoWorldConfig) if getattr(args, f.name, None) is not None}
    cfg = DemoWorldConfig(**overrides)
    root = Path(args.dataroot) if args.dataroot else default_data_dir() / "demo_world"
    info = generate_demo_world(root, cfg, force=args.force, log=lambda m: print(m, flush=True))
    print(json.dumps({k: info[k] for k in ("scenes", "samples", "files", "bytes")}, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="easyocc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="score Occ3D-layout predictions against ground truth (every convention)")
    s.add_argument("--pred", required=True, help="predictions: <dir>/<scene>/<token>/labels.npz with 'semantics'")
    s.add_argument("--gt", required=True, help="ground truth in the same layout, with mask_camera and mask_lidar")
    s.add_argument("--json", help="also write the table as JSON here")
    s.add_argument("--split", help="only scenes of this nuscenes-devkit split (e.g. val, mini_val)")
    s.add_argument("--scenes", help="only these scenes (comma separated)")
    s.add_argument("--allow-missing", action="store_true", help="skip frames missing from --pred (and count them)")
    s.add_argument("--workers", type=int, default=4, help="threads reading files")
    s.set_defaults(func=cmd_score)
    d = sub.add_parser("demo-world", help="generate the demo world (nuScenes format, exact Occ3D truth)")
    d.add_argument("--dataroot", help="where to write it (default: $EASYOCC_DATA_DIR/demo_world)")
    d.add_argument("--force", action="store_true", help="regenerate even if a complete one exists")
    from ops.demo_world.generate import DemoWorldConfig

    for f in fields(DemoWorldConfig):
        d.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(f.default), default=None)
    d.set_defaults(func=cmd_demo_world)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"easyocc {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
